"""Checkpointer selection: SQLite file by default, real PostgreSQL with DATABASE_URL."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from flows.checkpointer import open_checkpointer, psycopg_url
from flows.graph import build_graph
from flows.settings import Settings
from flows.stages import STAGE_NAMES
from flows.stages.context import StageContext
from tests.support.services import require_service

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _nodes() -> dict[str, Any]:
    def make(name: str) -> Any:
        return lambda state, runtime: {"completed_stages": [name], "evaluation": {"passed": False}}

    return {name: make(name) for name in STAGE_NAMES}


def _run_and_reload(settings: Settings, thread: str) -> list[str]:
    cfg = {"configurable": {"thread_id": thread}}
    with open_checkpointer(settings) as saver:
        graph = build_graph(_nodes()).compile(checkpointer=saver)
        graph.invoke({"completed_stages": []}, cfg, context=StageContext(settings, thread))
    with open_checkpointer(settings) as saver:  # a new connection sees the persisted state
        graph = build_graph(_nodes()).compile(checkpointer=saver)
        return list(graph.get_state(cfg).values["completed_stages"])


def test_psycopg_url_strips_sqlalchemy_driver() -> None:
    assert psycopg_url("postgresql+psycopg://u@h:5/db") == "postgresql://u@h:5/db"
    assert psycopg_url("postgresql://u@h/db") == "postgresql://u@h/db"


def test_sqlite_checkpoints_persist_in_state_dir(settings: Settings) -> None:
    assert not settings.uses_postgres
    assert _run_and_reload(settings, "sqlite-thread") == list(STAGE_NAMES[:5])
    assert (settings.state_dir / "langgraph.sqlite").is_file()


@pytest.mark.postgres
def test_postgres_checkpoints(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        psycopg.connect(psycopg_url(PG_URL), connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        if require_service():
            raise
        pytest.skip(f"PostgreSQL not available: {exc}")
    pg_settings = settings.model_copy(update={"database_url": PG_URL})
    assert pg_settings.uses_postgres
    thread = f"pg-{settings.state_dir.name}-{id(settings)}"
    assert _run_and_reload(pg_settings, thread) == list(STAGE_NAMES[:5])
    with psycopg.connect(psycopg_url(PG_URL)) as conn:
        rows = conn.execute("select count(*) from checkpoints where thread_id = %s", (thread,))
        assert rows.fetchone()[0] >= 5
