"""The pipeline as a LangGraph `StateGraph`: seven stages and one conditional edge.

A node is a plain `(state, runtime) -> partial state` that calls a stage with the
run's context. The Prefect flow swaps in nodes that call the stage as a Prefect task,
so each stage shows up as a named task run; plain Python uses the stage directly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from itertools import pairwise
from typing import Any, Literal

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from flows.stages import STAGE_NAMES, Stage, stage_functions
from flows.stages.context import StageContext
from flows.stages.state import PipelineState

Node = Callable[[PipelineState, Runtime[StageContext]], dict[str, Any]]


def plain_node(stage: Stage) -> Node:
    def node(state: PipelineState, runtime: Runtime[StageContext]) -> dict[str, Any]:
        return stage(state, runtime.context)

    node.__name__ = stage.__name__
    return node


def evaluation_gate(state: PipelineState) -> Literal["save_model", "__end__"]:
    """Only a model that reaches the performance threshold is saved and registered."""
    if state.get("evaluation", {}).get("passed"):
        return "save_model"
    return "__end__"  # == langgraph END


Graph = StateGraph[PipelineState, StageContext, PipelineState, PipelineState]


def build_graph(nodes: Mapping[str, Node] | None = None) -> Graph:
    """prepare → validate → initialize → train → evaluate ─(passed)→ save → update_tracking."""
    stages = stage_functions()
    builder = StateGraph(PipelineState, context_schema=StageContext)
    for name in STAGE_NAMES:
        node = (nodes or {}).get(name) or plain_node(stages[name])
        builder.add_node(name, node)  # type: ignore[call-overload]  # runtime-context node
    builder.add_edge(START, "prepare_data")
    for upstream, downstream in pairwise(STAGE_NAMES[:5]):
        builder.add_edge(upstream, downstream)
    builder.add_conditional_edges(
        "evaluate_model", evaluation_gate, {"save_model": "save_model", END: END}
    )
    builder.add_edge("save_model", "update_tracking")
    builder.add_edge("update_tracking", END)
    return builder


def mermaid() -> str:
    """The pipeline diagram (Mermaid), for docs and the UI."""
    return build_graph().compile().get_graph().draw_mermaid()
