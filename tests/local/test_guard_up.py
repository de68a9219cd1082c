"""Issue 10, item 13: `pipespec up` serves this machine only and keeps the admin password private.

Starts the real `pipespec up` twice on a free port in a throw-away project home,
looks at the sockets its processes listen on, the password file's mode, and
what it printed; stops it by its process group.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from pipespec.local.up import password_file
from tests.support.airflow_server import free_port

pytestmark = pytest.mark.slow  # starts the whole local Airflow twice

from tests.support.paths import ROOT  # noqa: E402 - one home for where the checkout is
LOOPBACK = {"127.0.0.1", "::1"}


class Up:
    """`pipespec up` in its own session; its output collected as it comes."""

    def __init__(self, env: dict[str, str], port: int):
        self.lines: list[str] = []
        self.process = subprocess.Popen([str(Path(sys.executable).parent / "pipespec"), "up", "--port", str(port)],
                                        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_for(self, text: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(text in line for line in self.lines):
            assert self.process.poll() is None, f"pipespec up exited:\n{self.output}"
            assert time.monotonic() < deadline, f"no `{text}` in {timeout_s}s:\n{self.output}"
            time.sleep(1)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def stop(self) -> None:
        """SIGTERM to its process group: `pipespec up` stops Airflow's (a session of its own) itself."""
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def listening(root: int) -> list[tuple[str, int, str]]:
    """(address, port, process) of every listening TCP socket of `root` and its descendants (by ancestry:
    Airflow's process titles overwrite the environment a process could be recognized by)."""
    found = []
    parent = psutil.Process(root)
    for proc in [parent, *parent.children(recursive=True)]:
        try:
            found += [(c.laddr.ip, c.laddr.port, " ".join(proc.cmdline()[:4]))
                      for c in proc.net_connections("tcp") if c.status == psutil.CONN_LISTEN]
        except psutil.Error:
            continue
    return found


@pytest.fixture
def project(tmp_path) -> tuple[dict[str, str], Path]:
    home = tmp_path / "airflow"
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    env = {**os.environ, "AIRFLOW_HOME": str(home), "PIPESPEC_PIPELINES": str(pipelines),
           "PIPESPEC_STORAGE_ROOT": str(tmp_path / "storage"), "PIPESPEC_CACHE_DIR": str(tmp_path / "cache")}
    for key in ("AIRFLOW__API__HOST", "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"):
        env.pop(key, None)
    return env, home


def test_up_listens_on_loopback_only_and_never_prints_the_password(project):
    env, home = project
    port = free_port()
    passwords = home / "simple_auth_manager_passwords.json.generated"
    outputs = []
    for start in ("first", "second"):
        up = Up(env, port)
        try:
            up.wait_for("Airflow UI:", timeout_s=300)
            time.sleep(10)  # the scheduler and triggerer would have started their log servers by now
            sockets = listening(up.process.pid)
            assert (("127.0.0.1", port) in {(ip, p) for ip, p, _ in sockets}), sockets
            assert {ip for ip, _, _ in sockets} <= LOOPBACK, f"{start} start listens beyond this machine: {sockets}"
            assert stat.S_IMODE(passwords.stat().st_mode) == 0o600
        finally:
            airflow = [*psutil.Process(up.process.pid).children(recursive=True)]
            up.stop()
        outputs.append(up.output)
        assert not [proc for proc in airflow if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE]
    password = json.loads(passwords.read_text())["admin"]
    for output in outputs:
        assert str(passwords) in output and password not in output
    assert password not in (home / "standalone.log").read_text()
    assert stat.S_IMODE((home / "standalone.log").stat().st_mode) == 0o600
    for path in ("airflow.cfg", "airflow.db"):  # secret keys; connections
        assert stat.S_IMODE((home / path).stat().st_mode) & 0o077 == 0, path


def test_password_file_is_created_private(tmp_path):
    """Created 0600 by the call that creates it, whatever the umask; kept on the next start."""
    previous = os.umask(0o000)  # the most permissive umask: the mode must not come from it
    try:
        path = password_file(tmp_path, {"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer"})
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = json.loads(path.read_text())
    assert set(first) == {"admin", "viewer"} and len(set(first.values())) == 2
    assert password_file(tmp_path, {}) == path and json.loads(path.read_text()) == first


def test_a_world_readable_password_file_is_made_private(tmp_path):
    legacy = tmp_path / "simple_auth_manager_passwords.json.generated"
    legacy.write_text('{"admin": "old"}\n')
    legacy.chmod(0o644)
    assert password_file(tmp_path, {}) == legacy
    assert stat.S_IMODE(legacy.stat().st_mode) == 0o600 and json.loads(legacy.read_text()) == {"admin": "old"}
