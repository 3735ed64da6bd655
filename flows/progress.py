"""Progress in Prefect: progress artifacts, table/markdown artifacts and run logs.

Stage code only sees the `ProgressReporter` protocol; this adapter adds the Prefect side
on top of the terminal progress bar. Artifact updates are rate-limited (each one is an
API call) so a fast training loop is not slowed down.
"""

from __future__ import annotations

import logging
import time
from typing import Any, cast
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.logging import get_run_logger

from flows.stages.context import ConsoleProgress

MIN_UPDATE_SECONDS = 2.0


def artifact_key(name: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


class PrefectProgress(ConsoleProgress):
    def __init__(self, console: bool = True) -> None:
        super().__init__(enabled=console)
        self._artifacts: dict[str, UUID] = {}
        self._last_update: dict[str, float] = {}

    def _logger(self) -> logging.Logger | logging.LoggerAdapter[Any]:
        try:
            return get_run_logger()
        except Exception:  # outside a run context
            return logging.getLogger("lmcp.progress")

    def update(
        self, stage: str, done: int, total: int, metrics: dict[str, float] | None = None
    ) -> None:
        super().update(stage, done, total, metrics)
        now = time.monotonic()
        finished = done >= total
        if not finished and now - self._last_update.get(stage, 0.0) < MIN_UPDATE_SECONDS:
            return
        self._last_update[stage] = now
        percent = 100.0 * done / max(total, 1)
        key = artifact_key(f"{stage}-progress")
        if stage not in self._artifacts:
            artifact_id = create_progress_artifact(
                percent, key=key, description=f"{stage}: {done}/{total}"
            )
            self._artifacts[stage] = cast(UUID, artifact_id)  # sync call: not a coroutine
        else:
            update_progress_artifact(
                self._artifacts[stage], percent, description=f"{stage}: {done}/{total}"
            )
        shown = " ".join(f"{k}={v:.4g}" for k, v in (metrics or {}).items())
        self._logger().info("%s %5.1f%% (%d/%d) %s", stage, percent, done, total, shown)

    def record_table(self, key: str, rows: list[dict[str, Any]], description: str) -> None:
        create_table_artifact(rows, key=artifact_key(key), description=description)

    def record_markdown(self, key: str, markdown: str, description: str) -> None:
        create_markdown_artifact(markdown, key=artifact_key(key), description=description)
