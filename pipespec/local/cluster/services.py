"""The production topology in miniature (`make demo-cluster`), on this machine, on 127.0.0.1 only.

    PostgreSQL (pgserver, Unix socket)   the Airflow metadata DB, MLflow's backend store, the warehouse
    Redis                                 the Celery broker
    moto's S3 server                      the only storage the workers share: data, work files,
                                          published Assets, reports, task logs, MLflow artifacts
    MLflow tracking server                every worker reaches it over HTTP; artifacts proxied to S3
    api-server, scheduler, dag-processor, triggerer
    two Celery workers                    each with its own HOME, TMPDIR, working directory,
                                          AIRFLOW_HOME and copy of the specs (as if baked into an image)

Nothing a step writes may end up on a worker's disk: `PIPESPEC_STORAGE_ROOT` is unset, the work
area is `s3://` (`PIPESPEC_WORK_URI`), task logs go to S3 (Airflow's remote logging), and a step
that fell back to a local folder would write under its own worker's home, where the next step,
on the other worker, would not find it.

The triggerer runs, so deferrable waits (remote training, shadow and canary windows) have
somewhere to wait. A Ray head node fits as one more service started like MLflow's (its own
process group, `ray start --head --block` bound to 127.0.0.1), with `RAY_ADDRESS` added to
`airflow_env()`.

Every service runs in a process group of its own, so one can be stopped (or, in the fault tests,
killed like a lost machine) without touching the others; `Cluster.stop()` stops them all, in
reverse order, also when starting failed half way.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipespec.local.processes import stop_airflow

ROOT = Path(__file__).resolve().parents[3]
LOOPBACK = "127.0.0.1"
PIPELINE = "user_feedback"
DAGS = tuple(f"{PIPELINE}__{stage}" for stage in ("data", "train", "inference"))
WORKERS = ("worker-a", "worker-b")
BUCKETS = ("feedback", "pipespec-work", "mlflow-artifacts", "airflow-logs")
AWS_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
USER = "admin"
CONTROL_PLANE = (["api-server"], ["scheduler", "--skip-serve-logs"], ["dag-processor"],
                 ["triggerer", "--skip-serve-logs"])
PRIVATE = 0o077
CODE = ("pipespec", "schemas", "tasklib", "dags")  # what the image holds of the checkout
AIRFLOW = [sys.executable, "-m", "pipespec.local.cluster.launch"]  # `airflow`, with a Celery compatibility fix


def worker_hostname() -> str:
    """Airflow's `[core] hostname_callable` on the workers: the worker's name, recorded on every task
    instance it runs (both workers share this machine's real host name)."""
    return os.environ.get("PIPESPEC_WORKER_NAME") or socket.getfqdn()


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


@dataclass
class Service:
    """A started process (the leader of its own process group) and where its output goes."""

    name: str
    process: subprocess.Popen
    log: Path
    home: Path | None = None  # an Airflow component's AIRFLOW_HOME (stop_airflow also finds its task processes)


def spawn(name: str, command: list[str], env: dict[str, str], log: Path, cwd: Path | None = None,
          airflow_home: Path | None = None) -> Service:
    """Start `command` in a new process group, output appended to `log`. `airflow_home`: an Airflow
    component's own home, by which `stop_airflow` also finds its task processes; never set it for
    anything else (stop_airflow stops every process that has that AIRFLOW_HOME)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                   process_group=0, umask=PRIVATE)
    return Service(name, process, log, airflow_home)


def _plain_env(drop: tuple[str, ...] = ()) -> dict[str, str]:
    """This process's environment without Airflow's and pipespec's settings (and `drop`), for the
    services that are not Airflow: nothing stopping an Airflow by its AIRFLOW_HOME may match them."""
    return {key: value for key, value in os.environ.items()
            if not key.startswith(("AIRFLOW", "PIPESPEC_", *drop))}


def kill_tree(service: Service) -> None:
    """SIGKILL a service, its process group and every process below it, at once: a lost machine."""
    import psutil

    try:
        tree = [psutil.Process(service.process.pid), *psutil.Process(service.process.pid).children(recursive=True)]
    except psutil.Error:
        tree = []
    try:
        os.killpg(service.process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for proc in tree:  # Airflow's task processes run in groups of their own
        try:
            proc.kill()
        except psutil.Error:
            pass
    service.process.wait()


def stop_service(service: Service, grace_s: float = 20) -> None:
    """Stop a service by its process group: SIGTERM, then SIGKILL after `grace_s`."""
    if service.home is not None:
        stop_airflow(service.process, service.home, grace_s=grace_s)
        return
    try:
        os.killpg(service.process.pid, signal.SIGTERM)
        service.process.wait(timeout=grace_s)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        kill_tree(service)


def wait_until(ready: Callable[[], Any], what: str, timeout_s: float, every_s: float = 1,
               alive: Callable[[], bool] = lambda: True) -> Any:
    """Poll `ready` until it returns something truthy; TimeoutError (or RuntimeError if `alive` fails)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"{what}: the process exited")
        try:
            value = ready()
        except (OSError, urllib.error.HTTPError, ConnectionError):
            value = None
        if value:
            return value
        time.sleep(every_s)
    raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=3) as response:
        return response.status == 200


@dataclass
class Cluster:
    """The services above; `start()` then `stop()`, or `with cluster(...)`.

    `s3_endpoint`: an S3 server already running (the fault tests put a gate in front of moto);
    otherwise moto's server is started here.
    """

    workspace: Path
    s3_endpoint: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    worker_concurrency: int = 1
    services: dict[str, Service] = field(default_factory=dict)
    echo: Callable[[str], None] = print

    def __post_init__(self) -> None:
        self.workspace = self.workspace.resolve()
        self.logs = self.workspace / "logs"
        self.ports = {name: free_port() for name in ("redis", "s3", "mlflow", "api")}
        self.api_url = f"http://{LOOPBACK}:{self.ports['api']}"
        self.mlflow_url = f"http://{LOOPBACK}:{self.ports['mlflow']}"
        self.s3_url = self.s3_endpoint or f"http://{LOOPBACK}:{self.ports['s3']}"
        self.password = secrets.token_urlsafe(16)
        self._postgres: Any = None
        self.socket_dir = ""
        self.image = self.workspace / "image"

    # --- configuration --------------------------------------------------------------------

    def database_uri(self, database: str, driver: str = "postgresql+psycopg2") -> str:
        """A database on the cluster's PostgreSQL (a Unix socket: nothing listens on the network)."""
        return f"{driver}://postgres@/{database}?host={self.socket_dir}"

    def s3_connection(self) -> str:
        """The Airflow connection (JSON) every worker reaches S3 through."""
        return json.dumps({"conn_type": "aws", "login": AWS_KEYS["AWS_ACCESS_KEY_ID"],
                           "password": AWS_KEYS["AWS_SECRET_ACCESS_KEY"],
                           "extra": {"endpoint_url": self.s3_url, "region_name": AWS_KEYS["AWS_DEFAULT_REGION"]}})

    def airflow_env(self) -> dict[str, str]:
        """What every Airflow component and worker shares: the DB, the broker, the secrets, the connections."""
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("AIRFLOW", "PIPESPEC_", "MLFLOW_", "AWS_"))}
        env.update({
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database_uri("airflow"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": self.database_uri("airflow", "postgresql+asyncpg"),
            "AIRFLOW__CELERY__BROKER_URL": f"redis://{LOOPBACK}:{self.ports['redis']}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": self.database_uri("airflow", "db+postgresql"),
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.worker_concurrency),
            # One secret for all components: the scheduler signs each task's token, the API server checks it.
            "AIRFLOW__API_AUTH__JWT_SECRET": self._secret("jwt"),
            "AIRFLOW__API__SECRET_KEY": self._secret("api"),
            "AIRFLOW__CORE__FERNET_KEY": self._fernet(),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.image / "dags" / "pipespec_dags.py"),
            "PYTHONPATH": str(self.image),  # `import pipespec` finds the image's copy first
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "pipespec.local.cluster.services.worker_hostname",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.workspace / "passwords.json"),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
            "AIRFLOW__API__HOST": LOOPBACK,
            "AIRFLOW__API__PORT": str(self.ports["api"]),
            "AIRFLOW__API__BASE_URL": self.api_url,
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": LOOPBACK,
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "1",
            # A worker that stops heartbeating (a lost machine) fails its task after 30 s, not 5 min,
            # and the retry goes to a worker that is alive.
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
            "AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY": "False",
            # Task logs: written locally by each worker, uploaded to S3; the API server reads them there.
            "AIRFLOW__LOGGING__REMOTE_LOGGING": "True",
            "AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER": "s3://airflow-logs/logs",
            "AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID": "aws_default",
            "AIRFLOW_CONN_AWS_DEFAULT": self.s3_connection(),
            "AIRFLOW_CONN_FEEDBACK_DB": json.dumps({"conn_type": "postgres", "host": self.socket_dir,
                                                    "login": "postgres", "schema": "warehouse", "port": 5432}),
            "PIPESPEC_WORK_URI": "s3://pipespec-work/",
            "PIPESPEC_WORKER_SLOTS": str(len(WORKERS) * self.worker_concurrency),  # inference shards per run
            "MLFLOW_TRACKING_URI": self.mlflow_url,
            # A step that loses the MLflow server fails within a minute and Airflow retries it, rather than
            # MLflow's own client backing off for minutes inside one try.
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
            "DO_NOT_TRACK": "1",
        })
        env.update(self.extra_env)
        return env

    def _secret(self, name: str) -> str:
        path = self.workspace / f".{name}-secret"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        return path.read_text()

    def _fernet(self) -> str:
        import base64

        return base64.urlsafe_b64encode(self._secret("fernet").encode()[:32].ljust(32, b"0")).decode()

    # --- start and stop -------------------------------------------------------------------

    def start(self) -> "Cluster":
        """Start every service, in dependency order; stops what started if one fails."""
        self.workspace.mkdir(parents=True, exist_ok=True)
        (self.workspace / "passwords.json").write_text(json.dumps({USER: self.password}))
        (self.workspace / "passwords.json").chmod(0o600)
        try:
            self._build_image()
            self._start_postgres()
            self._start_redis()
            if self.s3_endpoint is None:
                self._start_s3()
            self._make_buckets()
            self.start_mlflow()
            self._start_airflow()
            for name in WORKERS:
                self.start_worker(name)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every service (reverse order), each by its process group; then PostgreSQL.
        Ctrl-C and SIGTERM while stopping are ignored: they would leave the rest running."""
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for name in reversed(list(self.services)):
                service = self.services.pop(name)
                try:
                    stop_service(service)
                except Exception as exc:  # keep stopping the others
                    self.echo(f"stopping {name}: {exc}")
            if self._postgres is not None:
                self._postgres.cleanup()
                self._postgres = None
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _build_image(self) -> None:
        """The code every component runs, copied once at start, as if baked into their image: an edit
        to the checkout while the cluster runs (a half-saved file) cannot break its DAG parses."""
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        for package in CODE:
            if (ROOT / package).is_dir():
                shutil.copytree(ROOT / package, self.image / package, ignore=ignore, dirs_exist_ok=True)

    def _start_postgres(self) -> None:
        import logging

        import pgserver
        import psycopg

        logging.getLogger("pgserver").setLevel(logging.WARNING)
        # PostgreSQL inherits this process's environment: without AIRFLOW_HOME, so that stopping an
        # Airflow by its home (pipespec/local/processes.py) never takes the database with it.
        saved = {key: os.environ.pop(key) for key in list(os.environ) if key.startswith("AIRFLOW")}
        try:
            self._postgres = pgserver.get_server(self.workspace / "postgres", cleanup_mode="stop")
        finally:
            os.environ.update(saved)
        from urllib.parse import parse_qs, urlparse

        self.socket_dir = parse_qs(urlparse(self._postgres.get_uri()).query)["host"][0]
        with psycopg.connect(host=self.socket_dir, user="postgres", dbname="postgres", autocommit=True) as admin:
            for database in ("airflow", "mlflow", "warehouse"):
                if not admin.execute("select 1 from pg_database where datname = %s", (database,)).fetchone():
                    admin.execute(f"create database {database}")

    def _start_redis(self) -> None:
        redis_server = shutil.which("redis-server")
        if redis_server is None:
            raise RuntimeError("redis-server is not installed: `make redis` (apt-get install redis-server)")
        folder = self.workspace / "redis"
        folder.mkdir(exist_ok=True)
        service = spawn("redis", [redis_server, "--bind", LOOPBACK, "--port", str(self.ports["redis"]),
                                  "--save", "", "--appendonly", "no", "--dir", str(folder)],
                        _plain_env(), self.logs / "redis.log")
        self.services["redis"] = service

        def ping() -> bool:
            import redis

            return bool(redis.Redis(host=LOOPBACK, port=self.ports["redis"], socket_timeout=2).ping())

        wait_until(ping, "Redis", 30, 0.3, alive=lambda: service.process.poll() is None)

    def _start_s3(self) -> None:
        env = {**_plain_env(), **AWS_KEYS}
        service = spawn("s3", [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(self.ports["s3"])],
                        env, self.logs / "s3.log")
        self.services["s3"] = service
        wait_until(lambda: _http_ok(f"{self.s3_url}/moto-api/"), "moto's S3 server", 60, 0.5,
                   alive=lambda: service.process.poll() is None)

    def s3_client(self) -> Any:
        """A boto3 S3 client on the cluster's S3 (for the demo's seeding and the tests' checks)."""
        import boto3

        return boto3.client("s3", endpoint_url=self.s3_url, region_name=AWS_KEYS["AWS_DEFAULT_REGION"],
                            aws_access_key_id=AWS_KEYS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=AWS_KEYS["AWS_SECRET_ACCESS_KEY"])

    def _make_buckets(self) -> None:
        client = self.s3_client()
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        for bucket in BUCKETS:
            if bucket not in existing:
                client.create_bucket(Bucket=bucket)

    def start_mlflow(self) -> None:
        """The MLflow tracking server: backend store in PostgreSQL, artifacts proxied to S3."""
        folder = self.workspace / "mlflow"
        folder.mkdir(exist_ok=True)
        env = _plain_env(("MLFLOW_", "AWS_"))
        # No job runner: it starts ~40 consumer processes for GenAI jobs the registry does not need.
        env.update(AWS_KEYS, MLFLOW_S3_ENDPOINT_URL=self.s3_url, HOME=str(folder),
                   MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        service = spawn("mlflow", [sys.executable, "-m", "mlflow", "server", "--host", LOOPBACK,
                                   "--port", str(self.ports["mlflow"]), "--workers", "1",
                                   "--backend-store-uri", self.database_uri("mlflow"),
                                   "--artifacts-destination", "s3://mlflow-artifacts/"],
                        env, self.logs / "mlflow.log", cwd=folder)
        self.services["mlflow"] = service
        wait_until(lambda: _http_ok(f"{self.mlflow_url}/health"), "the MLflow server", 120, 1,
                   alive=lambda: service.process.poll() is None)

    def stop_mlflow(self) -> None:
        """Stop the MLflow server (its process group); `start_mlflow()` brings it back on the same port."""
        stop_service(self.services.pop("mlflow"))

    def _start_airflow(self) -> None:
        home = self.workspace / "control-plane"
        home.mkdir(exist_ok=True)
        env = {**self.airflow_env(), "AIRFLOW_HOME": str(home), "HOME": str(home),
               "PIPESPEC_PIPELINES": str(self._specs(home)), "PIPESPEC_CACHE_DIR": str(home / "cache")}
        migrate = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, capture_output=True,
                                 text=True, umask=PRIVATE)
        if migrate.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{migrate.stdout[-1500:]}{migrate.stderr[-1500:]}")
        for component in CONTROL_PLANE:
            name = component[0]
            self.services[name] = spawn(name, [*AIRFLOW, *component], env,
                                        self.logs / f"{name}.log", cwd=home, airflow_home=home)
        api = self.services["api-server"]
        wait_until(lambda: _http_ok(f"{self.api_url}/api/v2/monitor/health"), "the Airflow API server", 240, 2,
                   alive=lambda: api.process.poll() is None)

    def start_worker(self, name: str) -> None:
        """A Celery worker with a home, a TMPDIR, a working directory and specs of its own."""
        home = self.workspace / name
        for folder in ("tmp", "work"):
            (home / folder).mkdir(parents=True, exist_ok=True)
        from pipespec.airflow.preload import install

        install(home)  # its task processes start with pipespec's task path imported
        env = {**self.airflow_env(), "AIRFLOW_HOME": str(home), "HOME": str(home), "TMPDIR": str(home / "tmp"),
               "PIPESPEC_WORKER_NAME": name, "PIPESPEC_PIPELINES": str(self._specs(home)),
               "PIPESPEC_CACHE_DIR": str(home / "cache")}
        self.services[name] = spawn(
            name, [*AIRFLOW, "celery", "worker", "--concurrency", str(self.worker_concurrency),
                   "--celery-hostname", f"{name}@%h", "--skip-serve-logs", "--without-mingle", "--without-gossip"],
            env, self.logs / f"{name}.log", cwd=home / "work", airflow_home=home)

    def kill_worker(self, name: str) -> None:
        """SIGKILL a worker and every process under it, like a machine that disappears."""
        kill_tree(self.services.pop(name))

    def _specs(self, home: Path) -> Path:
        """This component's own copy of the specs (as deployed in its image)."""
        target = home / "pipelines"
        if not target.exists():
            shutil.copytree(self.workspace / "pipelines", target)
        return target

    # --- the REST API ---------------------------------------------------------------------

    def api(self, path: str, body: dict | None = None, method: str | None = None) -> Any:
        """Call Airflow's REST API (v2) as the admin user."""
        request = urllib.request.Request(f"{self.api_url}/api/v2{path}", method=method or ("POST" if body else "GET"),
                                         data=json.dumps(body).encode() if body is not None else None,
                                         headers={"Content-Type": "application/json",
                                                  "Authorization": f"Bearer {self._token()}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def _token(self) -> str:
        if not getattr(self, "_cached_token", None):
            request = urllib.request.Request(f"{self.api_url}/auth/token", method="POST",
                                             data=json.dumps({"username": USER, "password": self.password}).encode(),
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as response:
                self._cached_token = json.load(response)["access_token"]
        return self._cached_token

    def runs(self, dag_id: str) -> list[dict]:
        """The DAG's runs, newest first."""
        return self.api(f"/dags/{dag_id}/dagRuns?order_by=-run_after&limit=50")["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        """Every task instance of a run, mapped ones included."""
        return self.api(f"/dags/{dag_id}/dagRuns/{urllib.request.quote(run_id, safe='')}/taskInstances"
                        "?limit=100")["task_instances"]

    def trigger(self, dag_id: str, conf: dict | None = None) -> dict:
        """Start a run of `dag_id` now."""
        return self.api(f"/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})

    def wait_for_run(self, dag_id: str, after: set[str], timeout_s: float,
                     run_type: str | None = None) -> dict:
        """The first run of `dag_id` not in `after` (run ids) to finish; RuntimeError if it failed."""
        def finished() -> dict | None:
            for run in self.runs(dag_id):
                if run["dag_run_id"] in after or (run_type and run["run_type"] != run_type):
                    continue
                if run["state"] in ("success", "failed"):
                    return run
            return None

        run = wait_until(finished, f"a new run of {dag_id}", timeout_s, every_s=3)
        if run["state"] != "success":
            failed = [ti["task_id"] for ti in self.task_instances(dag_id, run["dag_run_id"])
                      if ti["state"] in ("failed", "upstream_failed")]
            raise RuntimeError(f"{dag_id} run {run['dag_run_id']} failed (tasks {failed}); logs: {self.logs}")
        return run

    def wait_for_dags(self, timeout_s: float = 300) -> None:
        """Until the dag-processor has parsed the pipeline's DAGs."""
        def parsed() -> bool:
            ids = {dag["dag_id"] for dag in self.api("/dags?limit=100")["dags"]}
            return set(DAGS) <= ids

        wait_until(parsed, "the DAGs to be parsed", timeout_s, every_s=3)

    def run_pipeline(self, timeout_s: float = 1500) -> list[dict]:
        """Trigger the data DAG through the REST API; wait for it and the Asset-triggered train and
        inference runs it starts. The three runs, in order."""
        before = {dag_id: {r["dag_run_id"] for r in self.runs(dag_id)} for dag_id in DAGS}
        started = time.monotonic()
        triggered = self.trigger(DAGS[0])
        runs = [self.wait_for_run(DAGS[0], before[DAGS[0]], timeout_s)]
        self.echo(f"   {DAGS[0]}: {triggered['dag_run_id']} success")
        for dag_id in DAGS[1:]:
            left = timeout_s - (time.monotonic() - started)
            runs.append(self.wait_for_run(dag_id, before[dag_id], left, run_type="asset_triggered"))
            self.echo(f"   {dag_id}: {runs[-1]['dag_run_id']} success")
        return runs

    def tasks_per_worker(self, runs: list[dict]) -> Counter:
        """How many task instances each worker ran, over `runs` (by the hostname a worker records)."""
        counts: Counter = Counter()
        for run in runs:
            for ti in self.task_instances(run["dag_id"], run["dag_run_id"]):
                if ti["state"] == "success" and ti.get("hostname"):
                    counts[ti["hostname"]] += 1
        return counts


@contextmanager
def cluster(workspace: Path, **options: Any) -> Iterator[Cluster]:
    """A started Cluster, stopped on the way out (also on failure and Ctrl-C)."""
    running = Cluster(workspace, **options)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield running.start()
    finally:
        running.stop()
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
