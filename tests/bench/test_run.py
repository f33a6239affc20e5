"""`make bench`, shrunk to seconds: both servers measured with every figure the report needs, the
report and plot written, and every process and the bench database gone afterwards; and one chip-only
run on a Redis Cluster the benchmark starts itself (--topology cluster)."""

import os
import types

import psutil
import psycopg2
import pytest

from bench import run as bench_run
from tests.topologies import unsupported

TINY = dict(
    quick=True,
    loads=[40],
    duration=1.0,
    chats=20,
    idle=[20],
    clients=1,
    in_flight=8,
    storm=[30],
    soak_rounds=2,
    soak_seconds=1.0,
    soak_rate=20.0,
    log_level="warning",
    profile=None,
    plot=None,
    parts="baseline,chip,idle,storm,soak",
    topology="single",
)


def test_a_tiny_run_measures_both_servers_reports_and_leaves_nothing_behind(tmp_path, monkeypatch, test_db, redis_url):
    monkeypatch.setattr(bench_run, "ADMIN_DB", test_db)
    monkeypatch.setattr(bench_run, "VALKEY", redis_url)
    ours = psutil.Process()
    before = set(ours.children(recursive=True))

    results = bench_run.run(types.SimpleNamespace(out=str(tmp_path), **TINY), tmp_path)

    for kind in ("chip", "baseline"):
        for step in results[kind]["steps"] + [results[kind]["saturation"]]:
            assert step["sent"] > 0 and step["delivered"] == step["sent"] and step["lost"] == 0, (kind, step)
            assert step["p50_ms"] <= step["p99_ms"] and step["server_cpu_s_per_1000"] > 0
    for step in results["chip"]["steps"] + [results["chip"]["saturation"]]:
        # every message made the full cycle: its ack reached Courier as a status
        assert step["statuses_to_courier"] == step["delivered"]
    assert all(step["statuses_to_courier"] == 0 for step in results["baseline"]["steps"])
    pair = results["chip_two_processes"]["saturation"]
    assert pair["delivered"] == pair["sent"] > 0 and pair["lost"] == 0
    assert [row["sockets"] for row in results["idle"]["chip"]] == [20]
    assert results["idle"]["baseline"][0]["kb_per_socket"] > 0
    storm = results["storm"]["chip"][0]
    assert storm["sockets"] == 30 and storm["start_chat_per_s"] > 0 and storm["db_queries_per_resume"] >= 0
    assert storm["redis_commands_per_resume"] > 0 and results["storm"]["baseline"][0]["start_chat_per_s"] > 0

    report = (tmp_path / "results.md").read_text()
    assert "| two processes >= 1.7 x one |" in report
    assert "| lost messages = 0 | 0 | yes |" in report
    assert "### Reconnect storm" in report and "| 30 |" in report
    assert [row["round"] for row in results["soak"]] == [1, 2] and all(row["lost"] == 0 for row in results["soak"])
    assert all(row["rss_mb"] > 0 and row["delivered"] > 0 for row in results["soak"]) and "### Soak" in report
    assert (tmp_path / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert set(ours.children(recursive=True)) <= before  # stub, servers and client workers all stopped
    with psycopg2.connect(test_db) as conn, conn.cursor() as cur:
        # its own database (named after this process): others may be another run's, still going
        cur.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (f"chip_bench_{os.getpid()}",))
        assert cur.fetchone() == (0,)


@pytest.mark.skipif(unsupported() is not None, reason=unsupported() or "")
def test_a_tiny_cluster_run_counts_redis_round_trips_and_cpu_on_the_primaries(tmp_path, monkeypatch, test_db):
    """--topology cluster: the benchmark starts its own cluster, chip runs on it, and the figures
    include the Redis commands and CPU per message summed over the primaries; nothing is left behind."""
    monkeypatch.setattr(bench_run, "ADMIN_DB", test_db)
    ours = psutil.Process()
    before = set(ours.children(recursive=True))
    opts = dict(TINY, parts="chip", topology="cluster")

    results = bench_run.run(types.SimpleNamespace(out=str(tmp_path), **opts), tmp_path)

    assert results["topology"] == "cluster"
    for step in results["chip"]["steps"] + [results["chip"]["saturation"]]:
        assert step["sent"] > 0 and step["delivered"] == step["sent"] and step["lost"] == 0, step
        assert step["statuses_to_courier"] == step["delivered"]
        # queue, push and ack each take at least one script on the chat's primary
        assert step["redis_ops_per_msg"] >= 2 and step["redis_cpu_s_per_1000"] > 0, step
    assert set(ours.children(recursive=True)) <= before  # the cluster's servers too
