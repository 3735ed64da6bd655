"""LangGraph checkpointer: SQLite in the state dir by default, Postgres with DATABASE_URL."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from langgraph.checkpoint.base import BaseCheckpointSaver

from flows.settings import Settings


def psycopg_url(url: str) -> str:
    """SQLAlchemy-style 'postgresql+psycopg://' -> libpq 'postgresql://'."""
    return re.sub(r"^postgres(ql)?\+\w+://", "postgresql://", url)


@contextmanager
def open_checkpointer(settings: Settings) -> Iterator[BaseCheckpointSaver]:
    if settings.uses_postgres:
        from langgraph.checkpoint.postgres import PostgresSaver

        with PostgresSaver.from_conn_string(psycopg_url(settings.db_url)) as pg_saver:
            pg_saver.setup()
            yield pg_saver
        return
    from langgraph.checkpoint.sqlite import SqliteSaver

    settings.ensure_dirs()
    conn = sqlite3.connect(
        settings.state_dir / "langgraph.sqlite", check_same_thread=False, timeout=30
    )
    try:
        saver = SqliteSaver(conn)
        saver.setup()
        yield saver
    finally:
        conn.close()
