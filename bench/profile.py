"""py-spy's raw (collapsed) stacks of chip's event-loop thread, summed per function for BENCHMARKS.md."""

import collections
import pathlib
import subprocess
import sys

PY_SPY = pathlib.Path(sys.executable).with_name("py-spy")
IDLE = "_worker (concurrent/futures/thread.py"  # the database pool's threads, waiting for work


def record(pid: int, seconds: float, raw: pathlib.Path) -> subprocess.Popen:
    """Sample the process for `seconds` (returns at once; wait on the Popen)."""
    return subprocess.Popen(
        [
            str(PY_SPY),
            "record",
            "-p",
            str(pid),
            "-d",
            str(int(seconds)),
            "-r",
            "250",
            "--format",
            "raw",
            "-o",
            str(raw),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def summary(raw: pathlib.Path, top: int = 30) -> str:
    """Share of the loop thread's samples spent in each function and what it calls (inclusive)."""
    inclusive, total = collections.Counter(), 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if IDLE in stack:
            continue
        total += int(count)
        names = {
            frame.split(" (")[0] + " (" + frame.split("(")[-1].split(":")[0].rsplit("/", 1)[-1] + ")"
            for frame in stack.split(";")
        }
        for name in names:
            inclusive[name] += int(count)
    lines = [f"{total} samples of the event-loop thread; inclusive share per function:"]
    lines += [f"{count / total:6.1%}  {name}" for name, count in inclusive.most_common(top)]
    return "\n".join(lines)
