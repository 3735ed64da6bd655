"""A real Prefect stack for tests: `prefect server start` (SQLite, free port, no UI) and
a process worker on the training pool, started once per test session and stopped again.

Use the session fixture from a conftest:

    from tests.support.prefect_stack import prefect_stack  # noqa: F401

Several conftests may import it: the stack is shared (reference-counted), and the last
finalizer stops it. The process environment is left alone (other tests may rely on
PREFECT_API_URL being unset): use `stack.api_url`, and `stack.env()` for child
processes. Stopping sends SIGTERM to each process group (twice for the worker, which
may ignore the first: stack-facts §2), then SIGKILL; flow-run processes, which the
worker starts in sessions of their own, are recorded beforehand and reaped too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest

from flows.settings import PROJECT_ROOT

POOL = "training"
SERVER_START_TIMEOUT_S = 180.0
WORKER_START_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def quiet_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DVC_NO_ANALYTICS": "1",
            "PREFECT_SERVER_UI_ENABLED": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


@dataclass
class PrefectStack:
    api_url: str
    pool: str
    root: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def log(self, name: str, tail: int = 4000) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a child process that talks to this stack."""
        return quiet_env(
            PREFECT_API_URL=self.api_url, PREFECT_HOME=str(self.root / "home"), **extra
        )

    def spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Start a child in a session (process group) of its own, logging to a file."""
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - closed by stop()
        proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.processes[name] = proc
        return proc

    def wait_http(self, name: str, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.processes[name].poll() is not None:
                raise RuntimeError(f"{name} exited early:\n{self.log(name)}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            time.sleep(0.3)
        raise RuntimeError(f"{name} not ready after {timeout:.0f}s:\n{self.log(name)}")

    def online_workers(self, pool: str | None = None) -> list[str]:
        url = f"{self.api_url}/work_pools/{pool or self.pool}/workers/filter"
        try:
            rows = httpx.post(url, json={}, timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return []
        return [w["name"] for w in rows if isinstance(w, dict) and w.get("status") == "ONLINE"]

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            stop_process_tree(self.processes.pop(name), twice=(name == "worker"))


def stop_process_tree(proc: subprocess.Popen[bytes], *, twice: bool = False) -> None:
    """SIGTERM the child's process group (again if `twice`), then SIGKILL; then reap its
    descendants that live in other sessions (recorded before the first signal)."""
    try:
        descendants = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    for sig in [signal.SIGTERM, signal.SIGTERM] if twice else [signal.SIGTERM]:
        _signal_group(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
            break
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)
    for child in descendants:
        with contextlib.suppress(psutil.Error):
            child.terminate()
    _, alive = psutil.wait_procs(descendants, timeout=10)
    for child in alive:
        with contextlib.suppress(psutil.Error):
            child.kill()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)  # the child leads its own session: pgid == pid


def start_stack(pool: str = POOL, *, worker: bool = True) -> PrefectStack:
    root = Path(tempfile.mkdtemp(prefix="lmcp-prefect-stack-"))
    (root / "home").mkdir()
    port = free_port()
    stack = PrefectStack(api_url=f"http://127.0.0.1:{port}/api", pool=pool, root=root)
    server_env = quiet_env(
        PREFECT_HOME=str(root / "home"),
        PREFECT_SERVER_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{root / 'prefect.db'}",
        PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="10",
    )
    server_env.pop("PREFECT_API_URL", None)
    prefect = [sys.executable, "-m", "prefect"]
    try:
        stack.spawn(
            "server",
            [
                *prefect,
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-ui",
                "--analytics-off",
            ],
            server_env,
        )
        stack.wait_http("server", f"{stack.api_url}/ready", SERVER_START_TIMEOUT_S)
        if worker:
            start_worker(stack)
    except BaseException:
        stack.stop()
        raise
    return stack


def start_worker(stack: PrefectStack) -> None:
    env = stack.env(
        PREFECT_WORKER_QUERY_SECONDS="1",
        PREFECT_WORKER_PREFETCH_SECONDS="1",
        PREFECT_WORKER_HEARTBEAT_SECONDS="5",
    )
    stack.spawn(
        "worker",
        [
            sys.executable,
            "-m",
            "prefect",
            "worker",
            "start",
            "--pool",
            stack.pool,
            "--type",
            "process",
            "--name",
            f"test-worker-{os.getpid()}",
            "--install-policy",
            "never",
            "--limit",
            "1",  # one training at a time: the CPU is shared
        ],
        env,
    )
    deadline = time.monotonic() + WORKER_START_TIMEOUT_S
    while not stack.online_workers():
        if stack.processes["worker"].poll() is not None:
            raise RuntimeError(f"worker exited early:\n{stack.log('worker')}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"worker not online:\n{stack.log('worker')}")
        time.sleep(0.5)


# ---------------------------------------------------------------------- shared instance

_shared: PrefectStack | None = None
_users = 0


def acquire_stack() -> PrefectStack:
    global _shared, _users
    if _shared is None:
        _shared = start_stack()
    _users += 1
    return _shared


def release_stack() -> None:
    global _shared, _users
    _users -= 1
    if _users > 0 or _shared is None:
        return
    stack, _shared = _shared, None
    _drain_client_workers()
    stack.stop()


def _drain_client_workers() -> None:
    """Send this process's buffered logs and events before the server goes away (else
    Prefect prints 'Error logging to API' at interpreter exit)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    with contextlib.suppress(Exception):
        APILogWorker.drain_all(timeout=10)
    with contextlib.suppress(Exception):
        EventsWorker.drain_all(timeout=10)


@pytest.fixture(scope="session")
def prefect_stack() -> Iterator[PrefectStack]:
    """A running Prefect server + process worker on the "training" pool."""
    stack = acquire_stack()
    try:
        yield stack
    finally:
        release_stack()
