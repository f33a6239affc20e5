"""The benchmark run: chip and the baseline under the same load, from the same client code.

Everything is on loopback: a bench database made and dropped here (CHIP_BENCH_DB names the
PostgreSQL server), Redis flushed before and after (--topology single: a server started here, or the
database CHIP_BENCH_VALKEY names; cluster or sentinel: servers started here on free ports, see
bench/stores.py),
a Courier stub, the servers under test and the client workers, all started here and stopped by
their PIDs when the run ends, however it ends. Every load step is bounded in rate and time.
"""

import argparse
import json
import multiprocessing
import os
import pathlib
import resource
import socket
import subprocess
import sys
import time
import urllib.request

import psutil

from bench import chipstats, client, profile, report
from bench.stores import TOPOLOGIES, Store
from demo.rows import Rows, create_database, drop_database

ROOT = pathlib.Path(__file__).resolve().parent.parent
ADMIN_DB = os.environ.get("CHIP_BENCH_DB", "postgres://postgres@localhost:5432/postgres")
VALKEY = os.environ.get("CHIP_BENCH_VALKEY")  # unset: the single topology starts a server of its own
# every simulated visitor comes from 127.0.0.1: the per-address limits would refuse all but a few
PER_IP_LIMITS_OFF = [
    "--max-sockets-per-ip",
    "1000000",
    "--new-chats-per-ip",
    "1000000",
    "--max-connections-per-ip",
    "1000000",
]

FULL = dict(
    loads=[200, 500, 1000, 2000],
    duration=10.0,
    chats=1000,
    idle=[1000, 5000, 10000],
    clients=2,
    in_flight=200,
    storm=[3000, 18000],
)
QUICK = dict(
    loads=[200, 500, 1000], duration=3.0, chats=1000, idle=[1000, 2000], clients=2, in_flight=200, storm=[3000]
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(ordered: list, q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Bench:
    def __init__(self, opts, out: pathlib.Path):
        self.opts = opts
        self.out = out
        self.procs: list[subprocess.Popen] = []
        self.workers: list = []  # (process, pipe)
        self.next_id = 1
        self.store = None
        self.db_url = None
        self.channel_uuid = None
        self.chat_ids: list = []
        self.stub_url = None
        self.metrics_ports: dict[int, int] = {}  # a chip's public port -> its --metrics-port

    # processes

    def spawn(self, name: str, args: list) -> subprocess.Popen:
        log = open(self.out / f"{name}.log", "ab")
        process = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs.append(process)
        return process

    def stop(self, process: subprocess.Popen):
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self.procs.remove(process)

    def wait_up(self, url: str, process: subprocess.Popen):
        for _ in range(200):
            if process.poll() is not None:
                raise RuntimeError(f"{process.args} exited with {process.returncode}; see {self.out}")
            try:
                urllib.request.urlopen(url, timeout=1).read()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{url} never answered")

    def start_server(self, kind: str, name: str) -> tuple:
        """Start the baseline or a chip process on a free loopback port."""
        port = free_port()
        if kind == "baseline":
            process = self.spawn(name, ["-m", "bench.baseline", str(port)])
        else:
            self.metrics_ports[port] = free_port()
            process = self.spawn(
                name,
                [
                    "chip.py",
                    "--address",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--db",
                    self.db_url,
                    "--valkey",
                    self.store.url,
                    "--courier-url",
                    self.stub_url,
                    "--instance-id",
                    name,
                    "--log-level",
                    self.opts.log_level,
                    "--metrics-port",
                    str(self.metrics_ports[port]),
                    *PER_IP_LIMITS_OFF,
                ],
            )
        # chip listens before its stores have answered: /ready says when it serves (the baseline has only /)
        self.wait_up(f"http://127.0.0.1:{port}/" + ("" if kind == "baseline" else "ready"), process)
        return process, port

    def start_workers(self):
        context = multiprocessing.get_context("fork")
        for index in range(self.opts.clients):
            parent, child = context.Pipe()
            process = context.Process(target=client.run, args=(child, index, self.channel_uuid), daemon=True)
            process.start()
            self.workers.append((process, parent))

    def ask(self, method: str, kwargs: list) -> list:
        for (_, pipe), each in zip(self.workers, kwargs):
            pipe.send((method, each))
        results = [pipe.recv() for _, pipe in self.workers]
        failed = [r["failed"] for r in results if "failed" in r]
        if failed:
            raise RuntimeError(f"client worker failed in {method}: {failed[0]}")
        return results

    # setup and teardown

    def setup(self):
        self.db_url = create_database(ADMIN_DB, f"chip_bench_{os.getpid()}")
        rows = Rows(self.db_url)
        org_id = rows.org("Bench")
        self.channel_uuid = rows.channel(org_id, secret=client.SECRET)
        self.chat_ids = [
            f"bench{i:019d}" for i in range(max(self.opts.chats, *self.opts.idle, *getattr(self.opts, "storm", [0])))
        ]
        rows.contacts(org_id, self.channel_uuid, self.chat_ids)
        rows.close()
        self.store = Store(self.opts.topology, VALKEY)
        self.store.flush()
        port = free_port()
        self.stub_url = f"http://127.0.0.1:{port}"
        self.wait_up(self.stub_url + "/stats", self.spawn("courier-stub", ["-m", "bench.stub", str(port)]))
        self.stub = self.procs[-1]
        self.start_workers()

    def teardown(self):
        for process, pipe in self.workers:
            try:
                pipe.send(("stop", {}))
            except OSError:
                pass
            process.join(10)
            if process.is_alive():
                process.terminate()
                process.join()
        for process in list(self.procs):
            self.stop(process)
        if self.db_url:
            drop_database(ADMIN_DB, self.db_url)
        if self.store:
            self.store.flush()
            self.store.stop()

    # measuring

    def connect(self, group: str, ports: list, chat_ids: list, concurrency: int = 50) -> dict:
        urls = [f"http://127.0.0.1:{port}/wc/connect/{self.channel_uuid}/" for port in ports]
        n = len(self.workers)
        before = self._chip_stats(ports)
        started = time.perf_counter()
        results = self.ask(
            "connect",
            [dict(group=group, ws_urls=urls, chat_ids=chat_ids[i::n], concurrency=concurrency) for i in range(n)],
        )
        seconds = time.perf_counter() - started
        after = self._chip_stats(ports)
        refused = sum(r["refused"] for r in results)
        if refused:
            raise RuntimeError(f"{refused} start_chat did not resume their chat")
        figures = {"sockets": len(chat_ids), "seconds": seconds, "start_chat_per_s": len(chat_ids) / seconds}
        if after:
            figures["db_queries_per_resume"] = sum(chipstats.queries(before[p], after[p]) for p in after) / len(
                chat_ids
            )
        return figures

    def _chip_stats(self, ports: list) -> dict:
        """Each chip's loop-lag and query counters now, by public port (the baseline has none)."""
        return {port: chipstats.scrape(self.metrics_ports[port]) for port in ports if port in self.metrics_ports}

    def stub_stats(self) -> dict:
        return json.loads(urllib.request.urlopen(self.stub_url + "/stats", timeout=5).read())

    def step(self, group: str, ports: list, servers: list, rate: float = 0, in_flight: int = 0) -> dict:
        """One load step against the servers on `ports`; figures for the report."""
        n, duration = len(self.workers), (self.opts.soak_seconds if group == "soak" else self.opts.duration)
        urls = [f"http://127.0.0.1:{port}/wc/send/{self.channel_uuid}/" for port in ports]
        servers_cpu, stub_cpu, (redis_cpu, redis_ops) = (
            self._cpu(servers),
            self._cpu([self.stub]),
            self.store.counters(),
        )
        stub_before, machine = self.stub_stats(), psutil.cpu_times()
        chip_before, commands_before = self._chip_stats(ports), self.store.commandstats()
        first = self.next_id
        self.next_id += 10_000_000
        results = self.ask(
            "load",
            [
                dict(
                    group=group,
                    post_urls=urls,
                    rate=rate / n,
                    duration=duration,
                    in_flight=in_flight // n,
                    first_id=first + i * 1_000_000,
                )
                for i in range(n)
            ],
        )
        chip = servers[0].args[1] == "chip.py"
        backlog = self._wait_backlog() if chip else 0.0
        settled = self.ask("settle", [{}] * n)
        delivered = sum(len(r["latencies"]) for r in results) + sum(r["late"] for r in settled)
        statuses = self._wait_statuses(stub_before, delivered, chip)
        stub_after = self.stub_stats()
        busy = psutil.cpu_times()
        server_cpu = self._cpu(servers) - servers_cpu
        redis_after = self.store.counters()
        chip_after, commands_after = self._chip_stats(ports), self.store.commandstats()
        stub_cpu, redis_cpu, redis_ops = (
            self._cpu([self.stub]) - stub_cpu,
            redis_after[0] - redis_cpu,
            redis_after[1] - redis_ops,
        )
        latencies = sorted(x for r in results for x in r["latencies"])
        seconds = max(r["seconds"] for r in results)
        figures = {
            "offered_per_s": rate or None,
            "in_flight": in_flight or None,
            "sent": sum(r["sent"] for r in results),
            "delivered": delivered,
            "errors": sum(r["errors"] for r in results),
            "late": sum(r["late"] for r in settled),
            "lost": sum(r["lost"] for r in settled),
            "duplicates": sum(r["duplicates"] for r in results),
            "backlog_drain_s": backlog,
            "sustained_per_s": (delivered - sum(r["late"] for r in settled)) / seconds if seconds else 0.0,
            "p50_ms": percentile(latencies, 0.50) * 1000,
            "p95_ms": percentile(latencies, 0.95) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000,
            "p999_ms": percentile(latencies, 0.999) * 1000,
            "max_ms": (latencies[-1] * 1000) if latencies else None,
            # the event loop's longest lateness in the step, to its histogram bucket (services/looplag.py)
            "loop_stall_ms": max(
                (chipstats.longest_stall_ms(chip_before[p], chip_after[p]) or float("inf") for p in chip_after),
                default=None,
            ),
            "courier_calls_per_msg": (stub_after["requests"] - stub_before["requests"]) / delivered if delivered else 0,
            "statuses_to_courier": statuses,
            "server_cpu_s_per_1000": server_cpu / delivered * 1000 if delivered else None,
            "client_cpu_s_per_1000": sum(r["cpu_seconds"] for r in results) / delivered * 1000 if delivered else None,
            # the rest of the machine's work per message: Courier's stand-in, and the Redis server
            "stub_cpu_s_per_1000": stub_cpu / delivered * 1000 if delivered else None,
            "redis_cpu_s_per_1000": redis_cpu / delivered * 1000 if delivered else None,
            # commands the Redis primaries processed per message (the benchmark's own left out)
            "redis_ops_per_msg": redis_ops / delivered if delivered else None,
            # which commands: INFO commandstats, the scripts' own commands included, per message
            "redis_commands_per_msg": {
                name: round((calls - commands_before.get(name, 0)) / delivered, 2)
                for name, calls in sorted(commands_after.items(), key=lambda kv: commands_before.get(kv[0], 0) - kv[1])
                if calls - commands_before.get(name, 0) >= 0.05 * delivered
            }
            if delivered
            else {},
            "machine_busy": 1 - (busy.idle - machine.idle) / (sum(busy) - sum(machine)),
            "left_in_outboxes": self.store.waiting(),
        }
        samples = [s for r in results for s in r["error_samples"]]
        if samples:
            figures["samples"] = [str(s) for s in samples[:5]]
        print(
            f"  {group} {'rate ' + str(rate) if rate else 'in flight ' + str(in_flight)}: "
            + ", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items()),
            flush=True,
        )
        return figures

    @staticmethod
    def _cpu(processes: list) -> float:
        """User and system CPU seconds the processes have used so far."""
        return sum(sum(psutil.Process(p.pid).cpu_times()[:2]) for p in processes)

    def _wait_backlog(self, limit: float = 60.0) -> float:
        """Wait (bounded) for chip's outboxes to empty, so a step's backlog does not spill into the
        next; the seconds it took. Messages still missing then are counted as lost."""
        started = time.monotonic()
        while self.store.waiting() and time.monotonic() - started < limit:
            time.sleep(0.1)
        time.sleep(0.2)  # the last chat_out frames are on the wire
        return time.monotonic() - started

    def _wait_statuses(self, before: dict, delivered: int, chip: bool) -> int:
        """How many `delivered` statuses reached the Courier stub for this step (chip only)."""
        if not chip:
            return 0
        deadline = time.monotonic() + 15
        while True:
            got = self.stub_stats()["events"].get("msg_status", 0) - before["events"].get("msg_status", 0)
            if got >= delivered or time.monotonic() > deadline:
                return got
            time.sleep(0.1)

    # the run

    def loads(self, kinds: list) -> dict:
        """Each fixed load, then the closed loop, on each server in turn: steps of one load run back
        to back, so a neighbour's burst on this shared machine hits both sides alike."""
        servers = {kind: self.start_server(kind, f"{kind}-load") for kind in kinds}
        results = {kind: {"steps": []} for kind in kinds}
        try:
            for kind, (_, port) in servers.items():
                print(f"{kind}: binding {self.opts.chats} chats", flush=True)
                results[kind]["bind"] = self.connect(kind, [port], self.chat_ids[: self.opts.chats])
            for rate in self.opts.loads:
                for kind, (process, port) in servers.items():
                    steps = results[kind]["steps"]
                    if steps and steps[-1]["sustained_per_s"] < 0.8 * steps[-1]["offered_per_s"]:
                        print(f"  {kind} rate {rate}: skipped, saturated at a lower load", flush=True)
                        continue  # a heavier fixed load would only pile up a backlog to wait out
                    spy = self.profile(kind, process, str(rate))
                    results[kind]["steps"].append(self.step(kind, [port], [process], rate=rate))
                    self.profiled(spy, results)
            for kind, (process, port) in servers.items():
                spy = self.profile(kind, process, "max")
                results[kind]["saturation"] = self.step(kind, [port], [process], in_flight=self.opts.in_flight)
                self.profiled(spy, results)
            # the pair shares Redis, so sockets of these chats left on the first chip would get every
            # message too (and a third process would be doing the work)
            self.ask("close", [{}] * len(self.workers))
            if "chip" in kinds:
                results["chip_two_processes"] = self.two_processes()
        finally:
            for process, _ in servers.values():
                self.stop(process)
        return results

    def profile(self, kind: str, process, step: str):
        if kind == "chip" and self.opts.profile == step:
            return profile.record(process.pid, self.opts.duration, self.out / "chip-profile.raw")
        return None

    def profiled(self, spy, results: dict):
        if spy is not None:
            spy.wait()
            results["chip_profile"] = profile.summary(self.out / "chip-profile.raw")
            print(results["chip_profile"], flush=True)

    def two_processes(self) -> dict:
        """The closed loop against two chip processes behind the same Redis, visitors and posts split
        between them (a post lands on either process, as behind a load balancer)."""
        servers = [self.start_server("chip", f"chip-pair{i}") for i in range(2)]
        try:
            print("chip, two processes", flush=True)
            ports = [port for _, port in servers]
            self.connect("pair", ports, self.chat_ids[: self.opts.chats])
            saturation = self.step("pair", ports, [p for p, _ in servers], in_flight=self.opts.in_flight)
            self.ask("close", [dict(group="pair")] * len(self.workers))
        finally:
            for process, _ in servers:
                self.stop(process)
        return {"saturation": saturation}

    def storm(self, kind: str) -> list:
        """Every visitor of a restarted process back at once: `size` sockets bound, all closed, then all
        opened again with their chat ids, as many at a time as the workers' connections allow. One
        process holds them all: the largest storm stays under a process's descriptor limit (20,000
        where BENCHMARKS.md was measured, a hard limit there that root cannot raise)."""
        process, port = self.start_server(kind, f"{kind}-storm")
        rows = []
        try:
            for size in self.opts.storm:
                self.connect(kind, [port], self.chat_ids[:size], concurrency=200)
                self.ask("close", [{}] * len(self.workers))
                time.sleep(1)
                _, redis_before = self.store.counters()
                again = self.connect(kind, [port], self.chat_ids[:size], concurrency=size)
                _, redis_after = self.store.counters()
                again["redis_commands_per_resume"] = (redis_after - redis_before) / size if kind == "chip" else None
                rows.append(again)
                print(f"  {kind} storm {again}", flush=True)
                self.ask("close", [{}] * len(self.workers))
                time.sleep(1)
        finally:
            self.stop(process)
        return rows

    def soak(self) -> list:
        """Memory over time: rounds of `soak_rate` msg/s for `soak_seconds` over the bound chats, every
        visitor then closing and coming back (a reconnect every round), chip's RSS sampled each round
        with every socket closed. What each message or visit leaves behind shows as RSS that keeps
        growing; the allocator's high-water mark as RSS that levels off."""
        process, port = self.start_server("chip", "chip-soak")
        rows = []
        try:
            for round_number in range(self.opts.soak_rounds):
                self.connect("soak", [port], self.chat_ids[: self.opts.chats])
                figures = self.step("soak", [port], [process], rate=self.opts.soak_rate)
                self.ask("close", [{}] * len(self.workers))
                time.sleep(1)
                rss = psutil.Process(process.pid).memory_info().rss / 2**20
                rows.append(
                    {
                        "round": round_number + 1,
                        "rss_mb": rss,
                        "delivered": figures["delivered"],
                        "lost": figures["lost"],
                    }
                )
                print(f"  soak {rows[-1]}", flush=True)
        finally:
            self.stop(process)
        return rows

    def idle(self, kind: str) -> list:
        process, port = self.start_server(kind, f"{kind}-idle")
        rows, held = [], 0
        try:
            time.sleep(1)
            rss0 = psutil.Process(process.pid).memory_info().rss
            for target in self.opts.idle:
                bound = self.connect(kind, [port], self.chat_ids[held:target])
                held = target
                time.sleep(2)
                rss = psutil.Process(process.pid).memory_info().rss
                rows.append(
                    {
                        "sockets": target,
                        "rss_mb": rss / 2**20,
                        "kb_per_socket": (rss - rss0) / target / 1024,
                        "start_chat_per_s": bound["start_chat_per_s"],
                    }
                )
                print(f"  {kind} idle {rows[-1]}", flush=True)
            self.ask("close", [{}] * len(self.workers))
        finally:
            self.stop(process)
        return rows


def main():
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short steps and fewer sockets (about a minute)")
    parser.add_argument("--clients", type=int, help="client worker processes")
    parser.add_argument("--duration", type=float, help="seconds per load step")
    parser.add_argument("--log-level", default="info", help="chip's --log-level (default: its default, info)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"), help="where results and logs go")
    parser.add_argument("--plot", help="PNG path for the latency plot (default: in --out)")
    parser.add_argument(
        "--profile",
        metavar="RATE",
        help="sample chip with py-spy during the step at this rate, or 'max' for the closed loop (adds its own load)",
    )
    parser.add_argument(
        "--topology",
        choices=TOPOLOGIES,
        default="single",
        help="Redis chip runs against: single (CHIP_BENCH_VALKEY), or a cluster (3 primaries, "
        "a replica each) or Sentinel (primary, 2 replicas, 3 Sentinels) started here (default: single)",
    )
    parser.add_argument(
        "--parts",
        default="baseline,chip,idle,storm",
        help="which parts to run, comma-separated (baseline, chip, idle, storm, soak); the report "
        "needs the first three (default: the first four)",
    )
    parser.add_argument("--soak-rounds", type=int, default=15, help="soak: rounds (default 15)")
    parser.add_argument(
        "--soak-seconds", type=float, default=50.0, help="soak: seconds of load a round, then all reconnect (50)"
    )
    parser.add_argument("--soak-rate", type=float, default=300.0, help="soak: msg/s (default 300)")
    opts = parser.parse_args()
    for name, value in (QUICK if opts.quick else FULL).items():
        if getattr(opts, name, None) is None:
            setattr(opts, name, value)
    out = pathlib.Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    # chip and the workers inherit this; 10k sockets need 10k descriptors in chip and half in each worker
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(hard, 2 * max(*opts.idle, *opts.storm) + 1024)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))  # root may raise the hard limit...
    except ValueError:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # ...unless a sandbox forbids it

    run(opts, out)


def run(opts, out: pathlib.Path) -> dict:
    """The parts of the run that opts.parts names; with all three, the report is written too."""
    bench = Bench(opts, out)
    results = {
        "mode": "quick" if opts.quick else "full",
        "topology": opts.topology,
        "command": " ".join(sys.argv),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "settings": {k: v for k, v in vars(opts).items() if k not in ("out", "plot")},
    }
    parts = set(opts.parts.split(","))
    started = time.monotonic()
    try:
        bench.setup()
        results.update(bench.loads([kind for kind in ("baseline", "chip") if kind in parts]))
        if "idle" in parts:
            results["idle"] = {kind: bench.idle(kind) for kind in ("chip", "baseline")}
        if "storm" in parts:
            results["storm"] = {kind: bench.storm(kind) for kind in ("chip", "baseline")}
        if "soak" in parts:
            results["soak"] = bench.soak()
    finally:
        bench.teardown()
    results["seconds"] = time.monotonic() - started
    if parts >= {"baseline", "chip", "idle"}:
        report.write(results, out, pathlib.Path(opts.plot) if opts.plot else out / "latency.png")
    return results
