"""Shared fixtures. Every test session gets its own state dir; nothing touches .lmcp/."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_SESSION_STATE = Path(tempfile.mkdtemp(prefix="lmcp-test-"))
for key, value in {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DVC_NO_ANALYTICS": "1",
    "HF_HUB_OFFLINE": "1",
    "LMCP_STATE_DIR": str(_SESSION_STATE / "state"),
    "PREFECT_HOME": str(_SESSION_STATE / "prefect-home"),
}.items():
    os.environ[key] = value
for key in ("DATABASE_URL", "MLFLOW_TRACKING_URI", "PREFECT_API_URL", "REDIS_URL"):
    os.environ.pop(key, None)

from flows.settings import Settings, get_settings  # noqa: E402


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings pointing at a fresh per-test state dir (SQLite everywhere)."""
    monkeypatch.setenv("LMCP_STATE_DIR", str(tmp_path / "state"))
    get_settings.cache_clear()
    s = get_settings()
    s.ensure_dirs()
    yield s
    get_settings.cache_clear()
