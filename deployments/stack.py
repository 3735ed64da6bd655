"""The local stack: Prefect server + process worker + REST facade, supervised by honcho.

`Stack` is what `make up`, `make demo`, the stack tests and the benchmarks use. It starts
one supervisor process (`python -m deployments.stack`, honcho's `Manager` running the
`Procfile`) in a session of its own, waits for readiness, and stops everything again:

    with Stack(StackConfig.from_settings()) as stack:
        stack.wait_ready()          # Prefect /api/ready, then the facade's health = 200
        ...                         # stack.config.prefect_api_url, .docs_url, ...

honcho sends SIGTERM to each Procfile process group and SIGKILL after 5 s. Prefect's
process worker starts every flow run in a session of its own, so `stop()` also reaps
any descendant that outlived the supervisor (PIDs recorded before the stop).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import httpx
import psutil

from flows.settings import PROJECT_ROOT, Settings, get_settings

PROCFILE = PROJECT_ROOT / "Procfile"
ALL_PROCESSES = ("prefect", "worker", "api")
HEALTH_PATH = "/api/v1/monitoring/health"
_DB_URL_KEYS = ("PREFECT_SERVER_DATABASE_CONNECTION_URL", "PREFECT_API_DATABASE_CONNECTION_URL")


class StackError(RuntimeError):
    """The stack could not start, did not become ready, or died."""


@dataclass(frozen=True)
class StackConfig:
    """Where the stack lives and listens. Every process gets its settings from `env()`."""

    state_dir: Path
    training_pool: str = "training"
    host: str = "127.0.0.1"
    prefect_port: int = 4200
    api_port: int = 8000
    ui: bool = True
    processes: tuple[str, ...] = ALL_PROCESSES
    database_url: str | None = None  # Prefect server DB; None = SQLite in state_dir
    worker_query_seconds: float = 1.0
    extra_env: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **overrides: Any) -> StackConfig:
        s = settings or get_settings()
        db_url = next((os.environ[k] for k in _DB_URL_KEYS if os.environ.get(k)), None)
        base = cls(state_dir=s.state_dir, training_pool=s.training_pool, database_url=db_url)
        return replace(base, **overrides)

    def settings(self) -> Settings:
        """The project settings as the stack's processes see them (same state dir)."""
        return Settings(state_dir=self.state_dir)

    # URLs ------------------------------------------------------------------------
    @property
    def prefect_ui_url(self) -> str:
        return f"http://{self.host}:{self.prefect_port}"

    @property
    def prefect_api_url(self) -> str:
        return f"{self.prefect_ui_url}/api"

    @property
    def facade_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    @property
    def docs_url(self) -> str:
        return f"{self.facade_url}/docs"

    @property
    def health_url(self) -> str:
        return f"{self.facade_url}{HEALTH_PATH}"

    @property
    def prefect_db_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.state_dir / 'prefect.db'}"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "logs" / "stack.log"

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of the supervisor and, through it, of every stack process."""
        env = dict(os.environ if base is None else base)
        for key in _DB_URL_KEYS:
            env.pop(key, None)
        venv_bin = str(Path(sys.executable).parent)
        env.update(
            {
                "PATH": os.pathsep.join([venv_bin, env.get("PATH", os.defpath)]),
                "PYTHONUNBUFFERED": "1",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "DO_NOT_TRACK": "1",
                "MLFLOW_DISABLE_TELEMETRY": "true",
                "DVC_NO_ANALYTICS": "1",
                "LMCP_STATE_DIR": str(self.state_dir),
                "LMCP_TRAINING_POOL": self.training_pool,
                "LMCP_HOST": self.host,
                "LMCP_API_PORT": str(self.api_port),
                "LMCP_WORKER_NAME": f"lmcp-{self.training_pool}-worker",
                "PREFECT_PORT": str(self.prefect_port),
                "PREFECT_HOME": str(self.state_dir / "prefect-home"),
                "PREFECT_API_URL": self.prefect_api_url,
                "PREFECT_UI_URL": self.prefect_ui_url,
                "PREFECT_SERVER_UI_ENABLED": "true" if self.ui else "false",
                "PREFECT_SERVER_DATABASE_CONNECTION_URL": self.prefect_db_url,
                # Trigger -> running: the worker polls its pool every N seconds.
                "PREFECT_WORKER_QUERY_SECONDS": f"{self.worker_query_seconds:g}",
                "PREFECT_LOGGING_TO_API_BATCH_INTERVAL": "0.5",
            }
        )
        env.update(self.extra_env)
        return env


def banner(cfg: StackConfig, title: str = "LM Training Control Panel is up") -> str:
    """The URLs of a stack, and how to reach each part."""
    tracking = cfg.settings().tracking_uri
    return "\n".join(
        [
            "",
            title,
            f"  REST facade (OpenAPI)  {cfg.docs_url}",
            f"  Prefect UI             {cfg.prefect_ui_url}",
            f"  Prefect CLI            export PREFECT_API_URL={cfg.prefect_api_url} "
            f"PREFECT_HOME={cfg.state_dir / 'prefect-home'}",
            "                         prefect --no-prompt deploy --all   (from the project root)",
            f"  MLflow store           {tracking}",
            f"  MLflow UI              mlflow ui --backend-store-uri {tracking} --port 5000",
            f"  State dir              {cfg.state_dir}",
            "",
        ]
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


class Stack:
    """Starts the supervisor, waits for readiness, stops every process it started."""

    def __init__(self, config: StackConfig, output: IO[str] | None = None) -> None:
        """`output` receives the processes' logs; None = `config.log_file`."""
        self.config = config
        self._output = output
        self._log_handle: IO[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.leftovers: list[int] = []  # PIDs that outlived the supervisor and were reaped

    # lifecycle -------------------------------------------------------------------
    def start(self) -> Stack:
        cfg = self.config
        if self._proc is not None:
            raise StackError("stack already started")
        ports = {"prefect": cfg.prefect_port, "api": cfg.api_port}
        for name in ("prefect", "api"):
            if name in cfg.processes and port_in_use(cfg.host, ports[name]):
                raise StackError(
                    f"port {cfg.host}:{ports[name]} (for {name}) is already in use; "
                    "stop the other process or choose another port"
                )
        for sub in ("logs", "prefect-home"):
            (cfg.state_dir / sub).mkdir(parents=True, exist_ok=True)
        output = self._output
        if output is None:
            self._log_handle = output = cfg.log_file.open("a", encoding="utf-8")
        cmd = [sys.executable, "-m", "deployments.stack", "--procfile", str(PROCFILE)]
        cmd += ["--processes", ",".join(cfg.processes)]
        self._proc = subprocess.Popen(
            cmd,
            cwd=PROJECT_ROOT,
            env=cfg.env(),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us only; we stop the stack in order
        )
        return self

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def process_tree(self) -> list[psutil.Process]:
        """The supervisor and every live descendant (servers, worker, flow runs)."""
        if not self.running() or self._proc is None:
            return []
        return _tree(self._proc.pid)

    def stop(self, timeout: float = 30.0) -> list[int]:
        """SIGTERM the supervisor (honcho stops each process group), then reap leftovers.

        Returns the PIDs of everything that was running; all of them are gone afterwards.
        """
        proc, self._proc = self._proc, None
        if proc is None:
            return []
        tree: list[psutil.Process] = []
        if proc.poll() is None:
            tree = _tree(proc.pid)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self.leftovers = _reap([p for p in tree if p.pid != proc.pid])
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
        return [p.pid for p in tree]

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # readiness -------------------------------------------------------------------
    def wait_ready(self, timeout: float = 180.0) -> dict[str, Any]:
        """Wait for Prefect's /api/ready, then (with the facade) its health = 200."""
        deadline = time.monotonic() + timeout
        self._wait_for(
            f"{self.config.prefect_api_url}/ready",
            deadline,
            what=f"the Prefect server ({self.config.prefect_api_url})",
        )
        if "api" not in self.config.processes:
            return {}
        return self._wait_for(
            self.config.health_url, deadline, what=f"the facade ({self.config.health_url})"
        )

    def _wait_for(self, url: str, deadline: float, what: str) -> dict[str, Any]:
        last = "no answer yet"
        with httpx.Client(timeout=5.0) as client:
            while True:
                if not self.running():
                    raise StackError(f"the stack exited while waiting for {what}; {self._tail()}")
                try:
                    response = client.get(url)
                    if response.status_code == 200:
                        return _json_or_empty(response)
                    last = f"HTTP {response.status_code}: {response.text[:500]}"
                except httpx.TransportError as exc:
                    last = f"{type(exc).__name__}: not listening yet"
                if time.monotonic() > deadline:
                    raise StackError(
                        f"{what} not ready in time; last answer: {last}; {self._tail()}"
                    )
                time.sleep(0.5)

    def _tail(self, lines: int = 30) -> str:
        if self._output is not None:
            return "see the stack output above"
        try:
            text = self.config.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "no stack log"
        tail = "\n".join(text.splitlines()[-lines:])
        return f"log {self.config.log_file}, last lines:\n{tail}"


def _json_or_empty(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {"body": body}


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _reap(procs: Iterable[psutil.Process], grace: float = 10.0) -> list[int]:
    """Terminate (then kill) every process of `procs` that is still alive."""
    alive = [p for p in procs if _alive(p)]
    if not alive:
        return []
    for p in alive:
        _signal(p, terminate=True)
    _, still = psutil.wait_procs(alive, timeout=grace)
    for p in still:
        _signal(p, terminate=False)
    psutil.wait_procs(still, timeout=5)
    return [p.pid for p in alive]


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _signal(p: psutil.Process, terminate: bool) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):
        if terminate:
            p.terminate()
        else:
            p.kill()


# supervisor (runs in its own process) ---------------------------------------------
def supervise(procfile: Path, processes: Iterable[str]) -> int:
    """Run the Procfile's `processes` under honcho until one exits or we get SIGTERM."""
    from honcho.environ import parse_procfile
    from honcho.manager import Manager
    from honcho.printer import Printer

    commands = parse_procfile(procfile.read_text(encoding="utf-8")).processes
    manager = Manager(Printer(sys.stdout))
    for name in processes:
        if name not in commands:
            raise SystemExit(f"no process {name!r} in {procfile}")
        manager.add_process(name, commands[name], env=os.environ.copy(), cwd=str(PROJECT_ROOT))
    manager.loop()
    return int(manager.returncode or 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Supervise the stack's Procfile with honcho.")
    parser.add_argument("--procfile", type=Path, default=PROCFILE)
    parser.add_argument("--processes", default=",".join(ALL_PROCESSES))
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.processes.split(",") if n.strip()]
    return supervise(args.procfile, names)


if __name__ == "__main__":
    sys.exit(main())
