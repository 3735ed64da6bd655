"""The facade for tests: in-process (TestClient) or as a real uvicorn server."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient

from api.app import create_app
from flows.settings import Settings
from tests.support.prefect_stack import PrefectStack, free_port, stop_process_tree

IDLE_POOL = "idle-api"  # no worker polls it: runs created there never start


def facade(api_url: str, pool: str) -> TestClient:
    """The app in-process; use as a context manager so its lifespan runs."""
    return TestClient(create_app(Settings(prefect_api_url=api_url, training_pool=pool)))


@contextmanager
def uvicorn_facade(stack: PrefectStack, pool: str | None = None) -> Iterator[str]:
    """`uvicorn api.app:create_app --factory` on a free port; yields its base URL."""
    port = free_port()
    env = stack.env(LMCP_TRAINING_POOL=pool or stack.pool)
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "api.app:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    proc: subprocess.Popen[bytes] = stack.spawn(f"facade-{port}", cmd, env)
    try:
        stack.wait_http(f"facade-{port}", f"http://127.0.0.1:{port}/docs", 120)
        yield f"http://127.0.0.1:{port}"
    finally:
        stack.processes.pop(f"facade-{port}", None)
        stop_process_tree(proc)
