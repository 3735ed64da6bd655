"""Block types: saved to a real Prefect server, secrets stay secret."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from blocks import DVCRemote, MLflowTracking, ProjectDatabase
from tests.support.prefect_stack import PrefectStack, prefect_stack  # noqa: F401

pytestmark = pytest.mark.integration


@pytest.fixture
def api_url(prefect_stack: PrefectStack) -> Any:  # noqa: F811
    with temporary_settings({PREFECT_API_URL: prefect_stack.api_url}):
        yield prefect_stack.api_url


def test_secrets_are_masked_in_repr_and_env_only_on_request() -> None:
    block = MLflowTracking(tracking_uri="http://mlflow:5000", token="s3cr3t-token")
    assert "s3cr3t-token" not in repr(block)
    assert block.environment()["MLFLOW_TRACKING_TOKEN"] == "s3cr3t-token"
    remote = DVCRemote(url="s3://bucket/dvc", access_key_id="AKIA", secret_access_key="shh")
    assert remote.dvc_config()["remote"]["store"]["secret_access_key"] == "shh"  # type: ignore[index]
    assert "shh" not in repr(remote)


def test_blocks_round_trip_through_the_server_and_api_hides_secrets(api_url: str) -> None:
    name = f"t-{uuid.uuid4().hex[:8]}"
    MLflowTracking(tracking_uri="http://mlflow:5000", token="s3cr3t-token").save(name)
    ProjectDatabase(url="postgresql+psycopg://u:pw-secret@db/lmcp").save(name)

    loaded = MLflowTracking.load(name)
    assert loaded.token is not None and loaded.token.get_secret_value() == "s3cr3t-token"
    assert ProjectDatabase.load(name).url.get_secret_value().endswith("pw-secret@db/lmcp")

    doc = httpx.get(f"{api_url}/block_types/slug/lmcp-mlflow-tracking/block_documents/name/{name}")
    doc.raise_for_status()
    assert "s3cr3t-token" not in doc.text
    schema = httpx.get(f"{api_url}/block_types/slug/lmcp-mlflow-tracking").json()
    assert schema["slug"] == "lmcp-mlflow-tracking"


def test_saving_twice_without_overwrite_is_refused(api_url: str) -> None:
    name = f"t-{uuid.uuid4().hex[:8]}"
    DVCRemote(url="/mnt/dvc").save(name)
    with pytest.raises(ValueError, match="already"):
        DVCRemote(url="/mnt/other").save(name)
    assert DVCRemote.load(name).url == "/mnt/dvc"
