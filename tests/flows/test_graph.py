"""Graph wiring: stage order and the evaluation gate (no training involved)."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from flows.graph import build_graph, evaluation_gate, mermaid
from flows.stages import STAGE_NAMES, stage_functions
from flows.stages.context import StageContext


def recording_nodes(passed: bool) -> dict[str, Any]:
    def make(name: str) -> Any:
        def node(state: dict[str, Any], runtime: Any) -> dict[str, Any]:
            assert isinstance(runtime.context, StageContext)
            update: dict[str, Any] = {"completed_stages": [name]}
            if name == "evaluate_model":
                update["evaluation"] = {"passed": passed}
            return update

        return node

    return {name: make(name) for name in STAGE_NAMES}


@pytest.mark.parametrize(
    ("passed", "expected"), [(True, list(STAGE_NAMES)), (False, list(STAGE_NAMES[:5]))]
)
def test_gate_decides_between_seven_and_five_stages(
    settings: Any, passed: bool, expected: list[str]
) -> None:
    graph = build_graph(recording_nodes(passed)).compile(checkpointer=InMemorySaver())
    ctx = StageContext(settings=settings, run_id="g1")
    out = graph.invoke({"completed_stages": []}, {"configurable": {"thread_id": "g1"}}, context=ctx)
    assert out["completed_stages"] == expected


def test_gate_function() -> None:
    assert evaluation_gate({"evaluation": {"passed": True}}) == "save_model"
    assert evaluation_gate({"evaluation": {"passed": False}}) == "__end__"
    assert evaluation_gate({}) == "__end__"


def test_stage_functions_are_plain_and_in_order() -> None:
    stages = stage_functions()
    assert list(stages) == list(STAGE_NAMES)
    for fn in stages.values():
        assert "prefect" not in fn.__module__


def test_mermaid_diagram_shows_the_conditional_edge() -> None:
    diagram = mermaid()
    for name in STAGE_NAMES:
        assert name in diagram
    assert "-.->" in diagram  # conditional edges are dashed


def test_stage_logic_never_imports_prefect() -> None:
    import ast
    from pathlib import Path

    stage_dir = Path(__file__).parents[2] / "flows" / "stages"
    for path in stage_dir.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n.split(".")[0] == "prefect" for n in names), (
                f"{path.name} imports prefect"
            )
