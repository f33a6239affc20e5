"""The run's figures as JSON, a markdown report and a PNG plot of latency against load."""

import json
import pathlib

import matplotlib

matplotlib.use("Agg")  # no display on a server
import matplotlib.pyplot as plt  # noqa: E402


def _f(value, digits=1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def targets(r: dict) -> list:
    """(target, measured, met) for each target of issue 4."""
    at500 = next((s for s in r["chip"]["steps"] if s["offered_per_s"] == 500), None)
    chip_max = r["chip"]["saturation"]["sustained_per_s"]
    base_max = r["baseline"]["saturation"]["sustained_per_s"]
    two = r["chip_two_processes"]["saturation"]["sustained_per_s"]
    idle = r["idle"]["chip"][-1]
    rows = []
    if at500:
        rows.append(("p50 < 3 ms at 500 msg/s, 1,000 chats", f"{at500['p50_ms']:.2f} ms", at500["p50_ms"] < 3))
        rows.append(("p99 < 25 ms at 500 msg/s, 1,000 chats", f"{at500['p99_ms']:.2f} ms", at500["p99_ms"] < 25))
    rows.append(
        (
            "full-cycle throughput >= 0.5 x baseline",
            f"{chip_max:,.0f} / {base_max:,.0f} msg/s = {chip_max / base_max:.2f} x",
            chip_max >= base_max / 2,
        )
    )
    rows.append(
        (
            f"{idle['sockets']:,} idle bound sockets < 60 KB RSS each",
            f"{idle['kb_per_socket']:.1f} KB",
            idle["kb_per_socket"] < 60,
        )
    )
    rows.append(
        (
            "two processes >= 1.7 x one",
            f"{two:,.0f} / {chip_max:,.0f} msg/s = {two / chip_max:.2f} x",
            two >= 1.7 * chip_max,
        )
    )
    lost = sum(s["lost"] for k in ("chip", "baseline") for s in r[k]["steps"] + [r[k]["saturation"]])
    lost += r["chip_two_processes"]["saturation"]["lost"]
    rows.append(("lost messages = 0", str(lost), lost == 0))
    return rows


def ceiling(r: dict, one: dict, two: dict) -> list:
    """What the whole machine can carry of chip's full cycle, from one process's closed-loop step."""
    parts = [
        one.get(k)
        for k in ("server_cpu_s_per_1000", "client_cpu_s_per_1000", "stub_cpu_s_per_1000", "redis_cpu_s_per_1000")
    ]
    if None in parts:
        return []
    total, cpus = sum(parts), r["machine"]["cpus"]
    return [
        f"At one process's maximum every 1,000 messages took {total:.2f} CPU seconds of the whole machine "
        f"(chip {parts[0]:.2f}, clients {parts[1]:.2f}, Courier stub {parts[2]:.2f}, Redis {parts[3]:.2f}): "
        f"{cpus} CPUs carry at most about {cpus / total * 1000:,.0f} msg/s of this full cycle however many chip "
        f"processes share them. 1.7 x one process would be {1.7 * one['sustained_per_s']:,.0f} msg/s; two "
        f"processes reached {two['sustained_per_s']:,.0f}."
    ]


def markdown(r: dict) -> str:
    lines = [
        f"Mode: {r['mode']}, Redis topology {r.get('topology', 'single')}, {r['settings']['chats']:,} bound chats, {r['settings']['duration']:.0f} s per step, "
        f"{r['settings']['clients']} client processes, {r['machine']['cpus']} CPUs, Python "
        f"{r['machine']['python']}, run took {r['seconds']:.0f} s.",
        "",
        "### Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    lines += [f"| {t} | {m} | {'yes' if ok else '**no**'} |" for t, m, ok in targets(r)]
    lines += [
        "",
        "### Fixed loads (latency: POST sent -> chat_out received)",
        "",
        "| server | offered msg/s | sustained msg/s | p50 ms | p95 ms | p99 ms | max ms | late | lost | errors | "
        "Courier calls/msg | statuses to Courier | server CPU s/1k msgs | client CPU s/1k msgs | "
        "stub CPU s/1k msgs | Redis CPU s/1k msgs | Redis ops/msg | machine busy |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind in ("chip", "baseline"):
        for s in r[kind]["steps"] + [r[kind]["saturation"]]:
            offered = _f(s["offered_per_s"]) if s["offered_per_s"] else f"max ({s['in_flight']} in flight)"
            lines.append(
                f"| {kind} | {offered} | {_f(s['sustained_per_s'], 0)} | {_f(s['p50_ms'], 2)} | {_f(s['p95_ms'], 2)} "
                f"| {_f(s['p99_ms'], 2)} | {_f(s['max_ms'], 1)} | {s['late']} | {s['lost']} | {s['errors']} "
                f"| {_f(s['courier_calls_per_msg'], 2)} | {s['statuses_to_courier']:,} "
                f"| {_f(s['server_cpu_s_per_1000'], 3)} | {_f(s['client_cpu_s_per_1000'], 3)} "
                f"| {_f(s.get('stub_cpu_s_per_1000'), 3)} | {_f(s.get('redis_cpu_s_per_1000'), 3)} "
                f"| {_f(s.get('redis_ops_per_msg'), 1)} | {s['machine_busy']:.0%} |"
            )
    one, two = r["chip"]["saturation"], r["chip_two_processes"]["saturation"]
    base = r["baseline"]["saturation"]
    lines += [
        "",
        "### Throughput (closed loop: a fixed number of messages between POST and chat_out)",
        "",
        "| setup | sustained msg/s | ratio | p50 ms | p99 ms | lost | machine busy |",
        "|---|---|---|---|---|---|---|",
        f"| baseline | {_f(base['sustained_per_s'], 0)} | 1.00 x | {_f(base['p50_ms'], 2)} | "
        f"{_f(base['p99_ms'], 2)} | {base['lost']} | {base['machine_busy']:.0%} |",
        f"| chip, one process | {_f(one['sustained_per_s'], 0)} | "
        f"{one['sustained_per_s'] / base['sustained_per_s']:.2f} x baseline | {_f(one['p50_ms'], 2)} | "
        f"{_f(one['p99_ms'], 2)} | {one['lost']} | {one['machine_busy']:.0%} |",
        f"| chip, two processes | {_f(two['sustained_per_s'], 0)} | "
        f"{two['sustained_per_s'] / one['sustained_per_s']:.2f} x one process | {_f(two['p50_ms'], 2)} | "
        f"{_f(two['p99_ms'], 2)} | {two['lost']} | {two['machine_busy']:.0%} |",
        "",
        *ceiling(r, one, two),
        "",
        "### Idle bound sockets (RSS growth of the server process / sockets)",
        "",
        "| sockets | chip KB/socket | chip RSS MB | chip start_chat/s | baseline KB/socket | baseline RSS MB | "
        "baseline start_chat/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for c, b in zip(r["idle"]["chip"], r["idle"]["baseline"]):
        lines.append(
            f"| {c['sockets']:,} | {c['kb_per_socket']:.1f} | {c['rss_mb']:.0f} | {c['start_chat_per_s']:,.0f} "
            f"| {b['kb_per_socket']:.1f} | {b['rss_mb']:.0f} | {b['start_chat_per_s']:,.0f} |"
        )
    lines.append(
        f"\nstart_chat (resume) rate binding {r['settings']['chats']:,} chats before the loads: chip "
        f"{r['chip']['bind']['start_chat_per_s']:,.0f}/s, baseline {r['baseline']['bind']['start_chat_per_s']:,.0f}/s; "
        f"chip's PostgreSQL queries per resume: {_f(r['chip']['bind'].get('db_queries_per_resume'), 2)}."
    )
    lines += ["", *costs(r), "", *storms(r), "", *soaks(r)]
    return "\n".join(lines) + "\n"


def storms(r: dict) -> list:
    """Every visitor reconnecting at once with their chat ids, chip against the baseline."""
    if "storm" not in r:
        return []
    lines = [
        "### Reconnect storm (every visitor back at once with its chat id)",
        "",
        "| visitors | chip resumes/s | baseline resumes/s | ratio | chip PostgreSQL queries/resume | "
        "chip Redis commands/resume |",
        "|---|---|---|---|---|---|",
    ]
    for c, b in zip(r["storm"]["chip"], r["storm"]["baseline"]):
        lines.append(
            f"| {c['sockets']:,} | {c['start_chat_per_s']:,.0f} | {b['start_chat_per_s']:,.0f} | "
            f"{c['start_chat_per_s'] / b['start_chat_per_s']:.2f} x | {_f(c.get('db_queries_per_resume'), 2)} | "
            f"{_f(c.get('redis_commands_per_resume'), 1)} |"
        )
    return lines


def costs(r: dict) -> list:
    """Per chip step: the tail, the loop's longest stall, and which Redis commands each message cost."""
    lines = [
        "### chip per step: tail, loop stalls, Redis commands per message",
        "",
        "| offered msg/s | p99 ms | p99.9 ms | longest loop stall ms (bucket) | Redis commands/msg | "
        "by command (INFO commandstats, scripts' own commands included) |",
        "|---|---|---|---|---|---|",
    ]
    for s in r["chip"]["steps"] + [r["chip"]["saturation"]]:
        offered = _f(s["offered_per_s"]) if s["offered_per_s"] else f"max ({s['in_flight']} in flight)"
        stall = s.get("loop_stall_ms")
        by = ", ".join(f"{name} {count:g}" for name, count in s.get("redis_commands_per_msg", {}).items())
        lines.append(
            f"| {offered} | {_f(s['p99_ms'], 2)} | {_f(s.get('p999_ms'), 2)} | "
            f"{'> 5000' if stall == float('inf') else _f(stall, 1)} | {_f(s.get('redis_ops_per_msg'), 1)} | "
            f"{by} |"
        )
    return lines


def plot(r: dict, path: pathlib.Path):
    fig, ax = plt.subplots(figsize=(8, 5))
    for kind, style in (("chip", "-"), ("baseline", "--")):
        steps = r[kind]["steps"]
        x = [s["offered_per_s"] for s in steps]
        for q, colour in (("p50", "tab:green"), ("p95", "tab:orange"), ("p99", "tab:red")):
            ax.plot(x, [s[f"{q}_ms"] for s in steps], style, color=colour, marker="o", label=f"{kind} {q}")
    ax.set_xlabel("offered load (msg/s to /wc/send)")
    ax.set_ylabel("delivery latency, POST -> chat_out (ms)")
    ax.set_yscale("log")
    ax.set_title(f"chip vs minimal Tornado baseline, {r['settings']['chats']:,} bound chats ({r['mode']} run)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(ncol=2, fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(r: dict, out: pathlib.Path, plot_path: pathlib.Path):
    (out / "results.json").write_text(json.dumps(r, indent=2))
    text = markdown(r)
    (out / "results.md").write_text(text)
    plot(r, plot_path)
    print(text)
    print(f"written: {out / 'results.json'}, {out / 'results.md'}, {plot_path}")


def soaks(r: dict) -> list:
    """chip's RSS round after round, every socket closed when it is read."""
    if "soak" not in r:
        return []
    s = r["settings"]
    lines = [
        f"### Soak ({s.get('soak_rate', 0):,.0f} msg/s for {s.get('soak_seconds', 0):.0f} s a round over "
        f"{s['chats']:,} chats, every visitor reconnecting each round)",
        "",
        "| round | chip RSS MB (sockets closed) | delivered | lost |",
        "|---|---|---|---|",
    ]
    lines += [f"| {x['round']} | {x['rss_mb']:.1f} | {x['delivered']:,} | {x['lost']} |" for x in r["soak"]]
    return lines
