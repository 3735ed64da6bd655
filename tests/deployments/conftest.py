"""Fixtures for deployments/ tests: the shared real Prefect stack."""

from tests.support.prefect_stack import prefect_stack  # noqa: F401
