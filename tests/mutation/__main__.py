"""Mutation testing: plant each bug of tests/mutation/mutants.py, one at a time, in a temporary copy
of the tree (never in the working tree), run the tests meant to catch it, and print the kill rate.

A mutant is killed when its tests fail (or exceed their time limit, which counts as caught: a hang
is a failing test under pytest-timeout); it survives when they pass. A mutant whose text is no
longer in the code is "not applicable" and left out of the rate. The unmutated copy's tests must
pass first, or no rate is printed. Uses the same servers as the tests (CHIP_TEST_DB,
CHIP_TEST_VALKEY), one mutant at a time: about ten minutes on two cores.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.mutation.mutants import MUTANTS

ROOT = Path(__file__).resolve().parent.parent.parent
SKIP = shutil.ignore_patterns(".git", ".venv", "var", "__pycache__", ".pytest_cache", "results")
TEST_TIMEOUT = 60  # seconds per test inside a mutant's run (pytest-timeout)


def run_tests(tree: Path, tests, budget: float) -> tuple[str, str]:
    """('passed', 'failed' or 'timeout', the end of pytest's report) for the pytest arguments in `tree`."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-x",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--timeout={TEST_TIMEOUT}",
        *sorted(set(tests)),
    ]
    try:
        result = subprocess.run(
            command,
            cwd=tree,
            capture_output=True,
            text=True,
            timeout=budget,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
    except subprocess.TimeoutExpired:
        return "timeout", ""
    return ("passed" if result.returncode == 0 else "failed"), (result.stdout + result.stderr)[-3000:]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mutation", description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", dest="match", default="", help="only the mutants whose name contains this text")
    parser.add_argument("--list", action="store_true", help="list the mutants and whether each applies, and exit")
    parser.add_argument(
        "--budget",
        type=float,
        default=300,
        help="seconds one mutant's test run may take before it counts as caught (default 300)",
    )
    args = parser.parse_args(argv)
    # a SIGTERM ends the run like Ctrl-C: the running tests are killed and the copy removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    mutants = [m for m in MUTANTS if args.match.lower() in m.name.lower()]

    with tempfile.TemporaryDirectory(prefix="chip-mutate-") as directory:
        tree = Path(directory) / "chip"
        shutil.copytree(ROOT, tree, ignore=SKIP, symlinks=True)
        applicable = [m for m in mutants if (tree / m.path).read_text().count(m.old) == 1]
        if args.list:
            for m in mutants:
                print(f"{'applies' if m in applicable else 'not applicable':15} {m.name}")
            return 0
        every_test = [t for m in applicable for t in m.tests]
        print(f"baseline: the tests of {len(applicable)} mutant(s), unmutated ...", flush=True)
        outcome, report = run_tests(tree, every_test, args.budget * 3)
        if outcome != "passed":
            print(f"{report}\nthe unmutated tree's tests {outcome}: fix them first; no kill rate", file=sys.stderr)
            return 2
        killed = survived = 0
        for m in mutants:
            if m not in applicable:
                print(f"not applicable  {m.name} (its text is not in {m.path} exactly once)", flush=True)
                continue
            path = tree / m.path
            original = path.read_text()
            path.write_text(original.replace(m.old, m.new))
            started = time.monotonic()
            try:
                outcome, _ = run_tests(tree, m.tests, args.budget)
            finally:
                path.write_text(original)
            caught = outcome != "passed"
            killed += caught
            survived += not caught
            verdict = ("killed" if outcome == "failed" else "killed (timeout)") if caught else "SURVIVED"
            print(f"{verdict:16}{m.name} ({time.monotonic() - started:.0f} s)", flush=True)
    total = killed + survived
    if total:
        print(f"kill rate: {killed}/{total} = {100 * killed / total:.0f}% ({len(mutants) - total} not applicable)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
