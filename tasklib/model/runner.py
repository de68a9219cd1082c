"""The process that trains and evaluates models, so TensorFlow never loads in a worker.

    python -m pipespec.tasklib.model.runner train    --params-json '{...}' [--result-file PATH]
    python -m pipespec.tasklib.model.runner evaluate --params-file job.json [--result-file PATH]

The same command is the entry point of every compute backend: a local worker
starts it as a subprocess (`run` below), a Kubernetes pod or an Anyscale job
runs it as its command. Without local data paths in the params it reads the
dataset itself (`train.dataset`, with `PIPESPEC_STORAGE_ROOT` or S3 credentials
in its environment) and registers to `MLFLOW_TRACKING_URI`.

Its result is the step's result: JSON written to `--result-file` (use
`/airflow/xcom/return.json` in a KubernetesPodOperator) and printed as the last
line of stdout after `PIPESPEC_RESULT `. A failure prints the traceback, then
`PIPESPEC_ERROR {"type", "message"}`, and exits 1.

A process that runs many local jobs one after another (`make demo`, `pipespec run`)
can call `prestart()`: the next job's process is then started ahead of time
(`--wait MODULES`), imports TensorFlow, Keras and MLflow while other steps run,
and waits for its one job on stdin. Each job still gets a fresh process.
"""

from __future__ import annotations

import argparse
import atexit
import collections
import importlib
import json
import logging
import os
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

RESULT_MARKER = "PIPESPEC_RESULT "
ERROR_MARKER = "PIPESPEC_ERROR "
COMMANDS = {
    "train": "pipespec.tasklib.model.train:fit_and_register",
    "evaluate": "pipespec.tasklib.model.evaluate:score_versions",
}
TAIL_LINES = 20
# What a pre-started process imports while it waits: the costly imports of every built-in job.
PRELOAD = ("keras", "mlflow", "sklearn.metrics", "pyarrow.parquet",
           "pipespec.tasklib.model.train", "pipespec.tasklib.model.evaluate")
WAIT_FLAG = "--wait"
_waiting: list[subprocess.Popen] = []  # started by `prestart`, each takes one job
_prestarting = False

log = logging.getLogger(__name__)


class ProcessFailed(RuntimeError):
    """The training or evaluation process failed; the message carries its error and last lines."""


# --- the worker side ---------------------------------------------------------------

def command_line(command: str, params: dict[str, Any], result_file: str | None = None,
                 python: str = "python") -> list[str]:
    """The argv that runs `command` with `params` (a pod's or a job's entrypoint)."""
    argv = [python, "-m", "pipespec.tasklib.model.runner", command, "--params-json", json.dumps(params, default=str)]
    return argv + (["--result-file", result_file] if result_file else [])


def run(command: str, params: dict[str, Any], workdir: Path, what: str) -> dict[str, Any]:
    """Run `command` in a fresh Python process; stream its output to the log; return its result."""
    job, result = workdir / f"{command}-params.json", workdir / f"{command}-result.json"
    job.write_text(json.dumps(params, default=str))  # a file: a manifest can outgrow a command-line argument
    arguments = [command, "--params-file", str(job), "--result-file", str(result)]
    try:
        spawn([sys.executable, "-m", "pipespec.tasklib.model.runner", *arguments], what, _hand_job(arguments))
    finally:
        if _prestarting and not _waiting:
            _waiting.append(_start_waiting())  # its imports overlap with the steps until the next job
    return json.loads(result.read_text())


def prestart() -> None:
    """From now on keep one runner process started ahead, its imports done, for this process's next
    local job (see the module docstring); stopped when this process exits."""
    global _prestarting
    if not _prestarting:
        _prestarting = True
        atexit.register(_stop_waiting)
    if not _waiting:
        _waiting.append(_start_waiting())


def _start_waiting() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipespec.tasklib.model.runner", WAIT_FLAG, ",".join(PRELOAD)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace", env=_child_env())


def _hand_job(arguments: list[str]) -> subprocess.Popen | None:
    """A pre-started process, given the job's arguments and this moment's environment; None if none waits."""
    while _waiting:
        process = _waiting.pop()
        if process.poll() is not None:
            continue  # it died while waiting (its output says why, but nothing depends on it)
        assert process.stdin is not None
        try:
            process.stdin.write(json.dumps({"argv": arguments, "env": _child_env()}) + "\n")
            process.stdin.close()
        except OSError:
            _stop(process)
            continue
        return process
    return None


def _stop_waiting() -> None:
    while _waiting:
        _stop(_waiting.pop())


def spawn(argv: list[str], what: str, process: subprocess.Popen | None = None) -> None:
    """Run a process to the end (or take `process`, already started for it), logging each line; on
    failure raise its error and last lines."""
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    if process is None:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   errors="replace", env=_child_env())
    try:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip()
            log.info("%s | %s", what, line)
            tail.append(line)
        code = process.wait()
    finally:
        _stop(process)  # the worker was interrupted (timeout, kill): leave no orphan training
    if code != 0:
        raise ProcessFailed(f"{what} failed (exit code {code}): {_error_of(tail)}\n"
                            "--- last lines of its output ---\n" + "\n".join(tail))


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    import pipespec

    root = str(Path(pipespec.__file__).resolve().parents[1])  # the directory holding the `pipespec` package
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"  # lines reach the task log as they happen
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ info and warnings are noise in task logs
    return env


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _error_of(tail: collections.deque[str]) -> str:
    for line in reversed(tail):
        if line.startswith(ERROR_MARKER):
            try:
                error = json.loads(line[len(ERROR_MARKER):])
                return f"{error['type']}: {error['message']}"
            except (ValueError, KeyError):
                break
    return tail[-1] if tail else "no output"


# --- the process side ---------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    """Run one command with its params and print its result (or error) as JSON; the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [WAIT_FLAG]:
        argv = _wait_for_job(argv[1].split(",") if len(argv) > 1 else [])
        if argv is None:
            return 0  # the worker went away without a job
    parser = argparse.ArgumentParser(prog="python -m pipespec.tasklib.model.runner", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=sorted(COMMANDS))
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--params-json", help="the step's params as a JSON object")
    source.add_argument("--params-file", type=Path, help="a file holding the params JSON")
    parser.add_argument("--result-file", type=Path, help="also write the result JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
    try:
        params = json.loads(args.params_json if args.params_json is not None else args.params_file.read_text())
        module, _, function = COMMANDS[args.command].partition(":")
        result = getattr(importlib.import_module(module), function)(params)
    except Exception as error:  # noqa: BLE001 - every failure becomes the one-line error the worker reports
        traceback.print_exc()
        sys.stderr.flush()
        print(ERROR_MARKER + json.dumps({"type": type(error).__name__, "message": str(error)}), flush=True)
        return 1
    text = json.dumps(result, sort_keys=True, default=str)
    if args.result_file:
        args.result_file.parent.mkdir(parents=True, exist_ok=True)
        args.result_file.write_text(text)
    print(RESULT_MARKER + text, flush=True)
    return 0


def _wait_for_job(modules: list[str]) -> list[str] | None:
    """Import `modules`, then wait for one job on stdin: its arguments, run in its worker's environment."""
    for module in modules:
        importlib.import_module(module)
    line = sys.stdin.readline()
    if not line:
        return None
    job = json.loads(line)
    os.environ.clear()
    os.environ.update(job["env"])
    return list(job["argv"])


if __name__ == "__main__":
    sys.exit(main())
