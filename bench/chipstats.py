"""What a benchmark step reads of chip itself, from its /metrics (--metrics-port) before and after
the step: the event loop's longest stall (chip_loop_lag_seconds, services/looplag.py) and the SQL
statements it sent (chip_db_queries)."""

import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def scrape(port: int) -> dict:
    """{(sample name, le or None): value} of chip's loop-lag buckets and query count."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    found = {}
    for family in text_string_to_metric_families(text):
        if family.name in ("chip_loop_lag_seconds", "chip_db_queries"):
            for sample in family.samples:
                found[(sample.name, sample.labels.get("le"))] = sample.value
    return found


def longest_stall_ms(before: dict, after: dict) -> float | None:
    """The upper bound (ms) of the highest lag bucket whose count rose between the two scrapes: the
    longest the loop was late in that time, to the bucket's resolution (None: above the last bucket)."""
    bounds = sorted(float(le) for name, le in after if name == "chip_loop_lag_seconds_bucket" and le != "+Inf")
    previous = 0.0
    longest = 0.0
    for bound in bounds:
        key = ("chip_loop_lag_seconds_bucket", _le(after, bound))
        count = after[key] - before.get(key, 0.0)
        if count > previous:
            longest = bound
        previous = count
    total = after[("chip_loop_lag_seconds_count", None)] - before.get(("chip_loop_lag_seconds_count", None), 0.0)
    return None if total > previous else longest * 1000


def _le(samples: dict, bound: float) -> str:
    return next(
        le for name, le in samples if name == "chip_loop_lag_seconds_bucket" and le != "+Inf" and float(le) == bound
    )


def queries(before: dict, after: dict) -> float:
    key = ("chip_db_queries_total", None)
    return after.get(key, 0.0) - before.get(key, 0.0)
