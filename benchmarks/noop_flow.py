"""A flow with nothing to import: the floor of trigger -> first task running on the stack.

benchmarks/facade_jobs.py runs it next to the training flow, so the difference shows
what the training flow's own start-up (imports before its first stage) costs.
"""

from __future__ import annotations

from prefect import flow, task


@task(name="first_stage")
def first_stage() -> int:
    return 1


@flow(name="bench-noop")
def noop() -> int:
    return first_stage()
