"""Run every bench, one after another, each as its own process, with its output streamed as it comes.

    .venv/bin/python bench/run_all.py [--quick] [--assert] [--judge wall|cpu] [BENCH ...]

BENCH names a subset (e.g. `data_throughput`); by default all of them run, in this order:
check_speed, dagbag_load, data_throughput, inference_throughput, scheduler_e2e, demo_time.

Every target each bench judges is collected (bench/results.py) into one Markdown table and one
matplotlib chart: bench/results/latest.md and latest.png (or --out DIR), headed by the date, the
commit, the machine and the load average. A full run of every bench also puts that table into
docs/bench.md, between its `bench:latest` markers.

`--quick`, `--assert`, `--judge` and `--repeat` are passed on to each bench whose `--help` lists them. A bench
without `--quick` gets its own smaller settings instead, where it has some (check_speed: 200 specs,
one run). The exit code is 0 when every bench ran to its end (the benches are measurements: a
missed target prints FAIL and still exits 0), and 1 when one of them did not, or, with --assert,
when one of them missed a target.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from datetime import datetime, timezone
import sys
import time
from pathlib import Path

import results as recorded  # bench/results.py (this script's folder is on sys.path)

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
BENCHES = ("check_speed", "dagbag_load", "data_throughput", "inference_throughput", "scheduler_e2e", "demo_time")
DOCS = REPO / "docs" / "bench.md"
MARKERS = ("<!-- bench:latest -->", "<!-- /bench:latest -->")
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
    if args.repeat and "--repeat" in known and not (args.quick and name in QUICK_INSTEAD):
        argv += ["--repeat", str(args.repeat)]
    return argv


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benches", nargs="*", metavar="BENCH",
                        help=f"which benches to run (default: all of {', '.join(BENCHES)})")
    parser.add_argument("--quick", action="store_true", help="smaller, faster runs")
    parser.add_argument("--assert", dest="assert_", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--judge", choices=("wall", "cpu"), help="what the targets compare, where a bench can choose")
    parser.add_argument("--repeat", type=int, help="runs per variant, for each bench that takes --repeat (fewer: a "
                        "shorter, noisier run)")
    parser.add_argument("--out", type=Path, default=BENCH / "results", help="where latest.md and latest.png go")
    args = parser.parse_args()
    unknown = [name for name in args.benches if name not in BENCHES]
    if unknown:
        parser.error(f"no bench {', '.join(unknown)}; benches: {', '.join(BENCHES)}")

    results = []
    loads: list[float] = []
    began = datetime.now(timezone.utc)
    collected = Path(tempfile.mkstemp(prefix="pipespec-bench-", suffix=".jsonl")[1])
    for name in args.benches or BENCHES:
        argv = command(name, args)
        loads.append(os.getloadavg()[0])
        print(f"\n{'=' * 100}\n== {name}: {' '.join(Path(a).name if a.endswith('.py') else a for a in argv[1:])}"
              f"  (load average {loads[-1]:.2f})\n{'=' * 100}", flush=True)
        start = time.perf_counter()
        # inherits stdout/stderr: streamed as it runs
        code = subprocess.run(argv, cwd=REPO, env={**os.environ, recorded.ENV: str(collected)}).returncode
        results.append((name, code, time.perf_counter() - start))
    loads.append(os.getloadavg()[0])
    report(recorded.read(collected), results, args, began, loads)
    collected.unlink()

    print(f"\n{'=' * 100}\n== summary")
    for name, code, seconds in results:
        verdict = "ran" if code == 0 else "MISSED A TARGET" if code == 1 and args.assert_ else f"FAILED (exit {code})"
        print(f"  {name:<22} {seconds:7.1f} s  {verdict}")
    return 0 if all(code == 0 for _, code, _ in results) else 1


def report(rows: list[dict], ran: list[tuple[str, int, float]], args: argparse.Namespace, began: datetime,
           loads: list[float]) -> None:
    """latest.md and latest.png in --out; the table into docs/bench.md after a full run of every bench."""
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    header = [f"Bench run of {began:%Y-%m-%d %H:%M} UTC ({'--quick' if args.quick else 'full size'}"
              f"{', judged on ' + args.judge if args.judge else ''}), code {commit}",
              "", f"- machine: {recorded.machine()}",
              f"- load average (1 min) at each bench's start and at the end: {', '.join(f'{l:.1f}' for l in loads)}",
              f"- benches: {', '.join(f'{name} {seconds:.0f} s' + ('' if code == 0 else f' (exit {code})') for name, code, seconds in ran)}"]
    markdown, chart = args.out / "latest.md", args.out / "latest.png"
    recorded.write_report(rows, markdown, chart, header)
    print(f"\nreport: {markdown} and {chart} ({len(rows)} targets, {sum(not r['ok'] for r in rows)} missed)")
    if not args.quick and not args.benches and DOCS.is_file():
        text, (start, end) = DOCS.read_text(), MARKERS
        if start in text and end in text:
            table = markdown.read_text().replace(f"]({chart.name})", f"](../bench/results/{chart.name})")
            DOCS.write_text(text[:text.index(start) + len(start)] + "\n" + table + text[text.index(end):])
            print(f"docs: {DOCS} updated")


if __name__ == "__main__":
    sys.exit(main())
