"""The one settings object. Reads the seed's environment variables (and `.env`)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    """Configuration for every process of the panel (flows, worker, facade, CLI).

    Each field has an embedded default that needs no service: SQLite files and local
    directories under `state_dir`. Point the URLs at PostgreSQL/Redis/MLflow servers
    for production.
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    state_dir: Path = Field(
        default=PROJECT_ROOT / ".lmcp",
        validation_alias=AliasChoices("LMCP_STATE_DIR", "state_dir"),
        description="Directory for embedded stores: SQLite DBs, MLflow store, checkpoints.",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "database_url"),
        description="Project DB and LangGraph checkpoints. Default: SQLite under state_dir.",
    )
    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("REDIS_URL", "redis_url"),
        description="Redis, used for Prefect messaging when several API servers run.",
    )
    mlflow_tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "mlflow_tracking_uri"),
        description="MLflow tracking + registry. Default: SQLite under state_dir.",
    )
    prefect_api_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("PREFECT_API_URL", "prefect_api_url"),
        description="Prefect API of the running server, e.g. http://127.0.0.1:4200/api.",
    )
    drift_detection_threshold: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        validation_alias=AliasChoices("DRIFT_DETECTION_THRESHOLD", "drift_detection_threshold"),
        description="Share of drifted columns (0-1) at which drift is reported.",
    )
    openai_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("OPENAI_API_KEY", "openai_api_key"),
        description="Optional; never required by any feature.",
    )
    training_pool: str = Field(
        default="training",
        validation_alias=AliasChoices("LMCP_TRAINING_POOL", "training_pool"),
        description="Prefect work pool that runs training jobs.",
    )
    dataset_catalog: Path = Field(
        default=PROJECT_ROOT / "data" / "catalog.yaml",
        validation_alias=AliasChoices("LMCP_DATASET_CATALOG", "dataset_catalog"),
        description="YAML file mapping dataset names to files.",
    )

    @field_validator("state_dir", "dataset_catalog")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    # Derived locations -------------------------------------------------------------
    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.state_dir / 'lmcp.db'}"

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.state_dir / 'mlflow.db'}"

    @property
    def artifact_root(self) -> Path:
        return self.state_dir / "mlartifacts"

    @property
    def runs_dir(self) -> Path:
        """Per-run working files (processed data, model weights, plots)."""
        return self.state_dir / "runs"

    @property
    def checkpoints_dir(self) -> Path:
        return self.state_dir / "checkpoints"

    @property
    def data_cache_dir(self) -> Path:
        """Content-addressed cache of processed datasets."""
        return self.state_dir / "data"

    @property
    def uses_postgres(self) -> bool:
        return self.db_url.startswith("postgresql")

    def ensure_dirs(self) -> None:
        for path in (
            self.state_dir,
            self.runs_dir,
            self.checkpoints_dir,
            self.data_cache_dir,
            self.artifact_root,
        ):
            path.mkdir(parents=True, exist_ok=True)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
