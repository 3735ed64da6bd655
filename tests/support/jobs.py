"""Helpers for job tests: a tiny pipeline config, job bodies, waiting with a deadline."""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from flows.settings import PROJECT_ROOT

T = TypeVar("T")

SEED_JOB: dict[str, Any] = json.loads(
    (Path(PROJECT_ROOT) / "docs" / "examples" / "seed_job.json").read_text()
)

# A run of this config completes in some tens of seconds on a shared CPU.
TINY_CONFIG: dict[str, Any] = {
    "data": {"dataset_name": "tinyshakespeare", "preprocessing": {"tokenization": False}},
    "model": {
        "type": "transformer",
        "name": "tiny_test_model",
        "config": {"n_layer": 1, "n_head": 4, "n_embd": 32, "block_size": 32, "batch_size": 4},
    },
    "training": {"epochs": 1, "max_steps": 5, "log_interval": 1, "checkpoint_interval": 5},
    "evaluation": {"performance_threshold": 0.0, "max_batches": 2},
}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def job_body(name: str | None = None, schedule: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name or unique("job"),
        "schedule": schedule,
        "pipeline_config": copy.deepcopy(TINY_CONFIG),
    }
    body.update(extra)
    return body


def wait_until(
    probe: Callable[[], T | None], timeout: float, poll: float = 1.0, what: str = "condition"
) -> T:
    """Call `probe` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(poll)
    raise AssertionError(f"{what} not reached within {timeout:.0f}s (last: {last!r})")


def cancel_unfinished_runs(api_url: str, deployment_id: str) -> int:
    """Cancel a job's runs that have not finished (tests stop the work they started)."""
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Cancelled, Cancelling

    open_states = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED]
    with SyncPrefectClient(api_url) as client:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=open_states))
            ),
            limit=200,
        )
        for run in runs:
            running = run.state_type in (StateType.RUNNING, StateType.PAUSED)
            client.set_flow_run_state(run.id, Cancelling() if running else Cancelled(), force=True)
    return len(runs)
