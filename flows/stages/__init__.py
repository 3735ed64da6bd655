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


def stage_functions() -> dict[str, Stage]:
    """The seven stage functions, in pipeline order."""
    return {name: getattr(import_module(_MODULES[name]), name) for name in STAGE_NAMES}
