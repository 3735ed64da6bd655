"""Fixtures for the facade tests: the shared real Prefect stack, and the app in-process
(TestClient, lifespan included) pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.support.facade import IDLE_POOL, facade
from tests.support.prefect_stack import PrefectStack, prefect_stack  # noqa: F401


@pytest.fixture(scope="module")
def api(prefect_stack: PrefectStack) -> Iterator[TestClient]:  # noqa: F811
    """The facade on the "training" pool, which the stack's worker polls."""
    with facade(prefect_stack.api_url, prefect_stack.pool) as client:
        yield client


@pytest.fixture(scope="module")
def idle_api(prefect_stack: PrefectStack) -> Iterator[TestClient]:  # noqa: F811
    """The facade on a pool without a worker: jobs there never run (cheap tests)."""
    with facade(prefect_stack.api_url, IDLE_POOL) as client:
        yield client
