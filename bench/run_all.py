"""Run every bench, one after another, each as its own process, with its output streamed as it comes.

    .venv/bin/python bench/run_all.py [--quick] [--assert] [--judge wall|cpu] [BENCH ...]

BENCH names a subset (e.g. `data_throughput`); by default all of them run, in this order:
check_speed, dagbag_load, data_throughput, inference_throughput.

`--quick`, `--assert` and `--judge` are passed on to each bench whose `--help` lists them. A bench
without `--quick` gets its own smaller settings instead, where it has some (check_speed: 200 specs,
one run). The exit code is 0 when every bench ran to its end (the benches are measurements: a
missed target prints FAIL and still exits 0), and 1 when one of them did not, or, with --assert,
when one of them missed a target.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
BENCHES = ("check_speed", "dagbag_load", "data_throughput", "inference_throughput")
# For a bench without --quick: the options that make it quick.
QUICK_INSTEAD = {"check_speed": ["--specs", "200", "--repeat", "1"]}


def options(name: str) -> str:
    """The bench's --help text: which flags it takes."""
    done = subprocess.run([sys.executable, str(BENCH / f"{name}.py"), "--help"], cwd=REPO, capture_output=True,
                          text=True)
    return done.stdout if done.returncode == 0 else ""


def command(name: str, args: argparse.Namespace) -> list[str]:
    known = options(name)
    argv = [sys.executable, str(BENCH / f"{name}.py")]
    if args.quick:
        argv += ["--quick"] if "--quick" in known else QUICK_INSTEAD.get(name, [])
    if args.assert_ and "--assert" in known:
        argv.append("--assert")
    if args.judge and "--judge" in known:
        argv += ["--judge", args.judge]
    return argv


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benches", nargs="*", metavar="BENCH",
                        help=f"which benches to run (default: all of {', '.join(BENCHES)})")
    parser.add_argument("--quick", action="store_true", help="smaller, faster runs")
    parser.add_argument("--assert", dest="assert_", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--judge", choices=("wall", "cpu"), help="what the targets compare, where a bench can choose")
    args = parser.parse_args()
    unknown = [name for name in args.benches if name not in BENCHES]
    if unknown:
        parser.error(f"no bench {', '.join(unknown)}; benches: {', '.join(BENCHES)}")

    results = []
    for name in args.benches or BENCHES:
        argv = command(name, args)
        print(f"\n{'=' * 100}\n== {name}: {' '.join(Path(a).name if a.endswith('.py') else a for a in argv[1:])}"
              f"  (load average {os.getloadavg()[0]:.2f})\n{'=' * 100}", flush=True)
        start = time.perf_counter()
        code = subprocess.run(argv, cwd=REPO).returncode  # inherits stdout/stderr: streamed as it runs
        results.append((name, code, time.perf_counter() - start))

    print(f"\n{'=' * 100}\n== summary")
    for name, code, seconds in results:
        verdict = "ran" if code == 0 else "MISSED A TARGET" if code == 1 and args.assert_ else f"FAILED (exit {code})"
        print(f"  {name:<22} {seconds:7.1f} s  {verdict}")
    return 0 if all(code == 0 for _, code, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
