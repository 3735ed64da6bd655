"""What a stage gets besides the state: settings, run ids and a progress reporter.

The context is not part of the LangGraph state (it is never checkpointed); LangGraph
passes it to nodes as the run's `context`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tqdm.auto import tqdm

from flows.settings import Settings


class ProgressReporter(Protocol):
    """How long work shows progress. Stage code calls this; it never imports Prefect."""

    def update(
        self, stage: str, done: int, total: int, metrics: dict[str, float] | None = None
    ) -> None: ...

    def close(self, stage: str) -> None: ...

    def record_table(self, key: str, rows: list[dict[str, Any]], description: str) -> None: ...

    def record_markdown(self, key: str, markdown: str, description: str) -> None: ...


class ConsoleProgress:
    """A terminal progress bar per stage (tqdm); tables and markdown go to the log."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._bars: dict[str, tqdm] = {}

    def update(
        self, stage: str, done: int, total: int, metrics: dict[str, float] | None = None
    ) -> None:
        if not self.enabled:
            return
        bar = self._bars.get(stage)
        if bar is None:
            bar = self._bars[stage] = tqdm(
                total=total, desc=stage, unit="step", dynamic_ncols=True, mininterval=0.5
            )
        bar.total = total
        bar.n = done
        if metrics:
            bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items()}, refresh=False)
        bar.refresh()

    def close(self, stage: str) -> None:
        bar = self._bars.pop(stage, None)
        if bar is not None:
            bar.close()

    def record_table(self, key: str, rows: list[dict[str, Any]], description: str) -> None:
        return None

    def record_markdown(self, key: str, markdown: str, description: str) -> None:
        return None


@dataclass
class StageContext:
    settings: Settings
    run_id: str
    job_name: str = "adhoc"
    flow_run_id: str | None = None
    progress: ProgressReporter = field(default_factory=lambda: ConsoleProgress(enabled=False))

    @property
    def run_dir(self) -> Path:
        path = self.settings.runs_dir / self.run_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def checkpoint_dir(self) -> Path:
        path = self.settings.checkpoints_dir / self.run_id
        path.mkdir(parents=True, exist_ok=True)
        return path
