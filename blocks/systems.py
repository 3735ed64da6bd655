"""Block types for MLflow, the DVC remote and the project database."""

from __future__ import annotations

from typing import ClassVar

from prefect.blocks.core import Block
from pydantic import Field, SecretStr


class MLflowTracking(Block):
    """Where training runs, metrics and registered models are tracked."""

    _block_type_name: ClassVar[str] = "LMCP MLflow Tracking"
    _block_type_slug: ClassVar[str] = "lmcp-mlflow-tracking"
    _logo_url: ClassVar[str] = "https://mlflow.org/img/mlflow-black.svg"  # type: ignore[assignment]
    _description: ClassVar[str] = "MLflow tracking server and model registry used by training jobs."

    tracking_uri: str = Field(
        ..., description="MLflow tracking URI, e.g. http://mlflow:5000 or sqlite:///mlflow.db."
    )
    registry_uri: str | None = Field(None, description="Registry URI (default: tracking URI).")
    experiment_name: str = Field("lm-training", description="Experiment the runs are logged to.")
    token: SecretStr | None = Field(None, description="Bearer token for a secured MLflow server.")

    def environment(self) -> dict[str, str]:
        """Environment variables for a process that should log to this MLflow."""
        env = {"MLFLOW_TRACKING_URI": self.tracking_uri}
        if self.registry_uri:
            env["MLFLOW_REGISTRY_URI"] = self.registry_uri
        if self.token is not None:
            env["MLFLOW_TRACKING_TOKEN"] = self.token.get_secret_value()
        return env


class DVCRemote(Block):
    """The DVC remote that holds versioned datasets."""

    _block_type_name: ClassVar[str] = "LMCP DVC Remote"
    _block_type_slug: ClassVar[str] = "lmcp-dvc-remote"
    _description: ClassVar[str] = "DVC remote storage for datasets (local path, s3://, gs://...)."

    name: str = Field("store", description="Remote name in the DVC config.")
    url: str = Field(..., description="Remote URL, e.g. s3://bucket/dvc or /mnt/dvc-store.")
    access_key_id: str | None = Field(None, description="Access key id (object stores).")
    secret_access_key: SecretStr | None = Field(None, description="Secret access key.")

    def dvc_config(self) -> dict[str, object]:
        """A `config=` mapping for dvc.api calls that use this remote."""
        remote: dict[str, str] = {"url": self.url}
        if self.access_key_id:
            remote["access_key_id"] = self.access_key_id
        if self.secret_access_key is not None:
            remote["secret_access_key"] = self.secret_access_key.get_secret_value()
        return {"core": {"remote": self.name}, "remote": {self.name: remote}}


class ProjectDatabase(Block):
    """The project database (feedback, drift reports, audit, debug sessions)."""

    _block_type_name: ClassVar[str] = "LMCP Project Database"
    _block_type_slug: ClassVar[str] = "lmcp-project-database"
    _description: ClassVar[str] = (
        "SQLAlchemy URL of the project database (PostgreSQL in production)."
    )

    url: SecretStr = Field(
        ..., description="SQLAlchemy URL, e.g. postgresql+psycopg://user:pw@host:5432/lmcp."
    )
