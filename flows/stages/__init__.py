"""Stage logic: plain `(state, context) -> partial state` functions. No Prefect here.

Modules are imported lazily by `stage_functions()` so importing the package stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any

STAGE_NAMES: tuple[str, ...] = (
    "prepare_data",
    "validate_data",
    "initialize_model",
    "train_model",
    "evaluate_model",
    "save_model",
    "update_tracking",
)

_MODULES = {
    "prepare_data": "flows.stages.data",
    "validate_data": "flows.stages.data",
    "initialize_model": "flows.stages.model",
    "train_model": "flows.stages.train",
    "evaluate_model": "flows.stages.evaluate",
    "save_model": "flows.stages.registry",
    "update_tracking": "flows.stages.registry",
}

Stage = Callable[..., dict[str, Any]]


def load_stage(name: str) -> Stage:
    """The stage function itself (imports its module: torch, MLflow, DeepSpeed...)."""
    stage: Stage = getattr(import_module(_MODULES[name]), name)
    return stage


def _lazy(name: str) -> Stage:
    def stage(state: Any, ctx: Any) -> dict[str, Any]:
        return load_stage(name)(state, ctx)

    stage.__name__ = stage.__qualname__ = name
    stage.__module__ = _MODULES[name]
    stage.__doc__ = f"Stage {name} (imported from {_MODULES[name]} when it first runs)."
    return stage


def stage_functions() -> dict[str, Stage]:
    """The seven stages, in pipeline order. Each imports its module only when it runs,
    so a flow run reaches its first stage without paying for torch/MLflow imports."""
    return {name: _lazy(name) for name in STAGE_NAMES}
