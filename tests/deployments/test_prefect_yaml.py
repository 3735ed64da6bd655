"""prefect.yaml and the Docker variant, read back and validated without any server.

The process deployments are also deployed for real in test_stack.py; the Docker pool
cannot run here (no Docker engine), so its job variables are checked against
prefect-docker's own job-template schema and rendered into its job configuration.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from pathlib import Path
from typing import Any

import prefect
import pytest
import yaml
from prefect.cli.deploy._schedules import _schedule_config_to_deployment_schedule
from prefect.client.orchestration import PrefectClient
from prefect.flows import load_flow_from_entrypoint
from prefect.utilities.importtools import import_object
from prefect.utilities.schema_tools import ValidationError as SchemaValidationError
from prefect.utilities.schema_tools import validate
from prefect.utilities.templating import apply_values
from prefect_docker.worker import DockerWorker, DockerWorkerJobConfiguration

from deployments.schedules import format_schedule, parse_schedule
from flows.config import parse_pipeline_config
from flows.settings import PROJECT_ROOT

PREFECT_YAML = PROJECT_ROOT / "prefect.yaml"
DOCKER_DIR = PROJECT_ROOT / "deployments" / "docker"
DOCKER_YAML = DOCKER_DIR / "prefect.yaml"
SEED_JOB = json.loads((PROJECT_ROOT / "docs" / "examples" / "seed_job.json").read_text())
# The schedule each deployment must carry, in the job schedule grammar.
EXPECTED_SCHEDULES = {
    "daily-model-training": "cron:0 2 * * *",
    "six-hourly-training": "interval:hours=6",
    "daily-model-training-docker": "cron:0 2 * * *",
    "six-hourly-training-docker": "interval:hours=6",
}


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path} is not a YAML mapping"
    return data


def _deployments() -> list[tuple[str, dict[str, Any]]]:
    return [(str(p), d) for p in (PREFECT_YAML, DOCKER_YAML) for d in _load(p)["deployments"]]


DEPLOYMENTS = _deployments()
IDS = [d["name"] for _, d in DEPLOYMENTS]


def test_prefect_yaml_declares_the_project_and_its_prefect_version() -> None:
    for path in (PREFECT_YAML, DOCKER_YAML):
        data = _load(path)
        assert data["prefect-version"].split(".")[:2] == prefect.__version__.split(".")[:2]
        assert data["deployments"], f"{path} declares no deployment"
    names = [d["name"] for _, d in DEPLOYMENTS]
    assert len(names) == len(set(names)), "deployment names must be unique"
    assert set(names) == set(EXPECTED_SCHEDULES)


@pytest.mark.parametrize(("path", "deployment"), DEPLOYMENTS, ids=IDS)
def test_entrypoint_is_the_training_flow_and_parameters_validate(
    path: str, deployment: dict[str, Any]
) -> None:
    flow = load_flow_from_entrypoint(str(PROJECT_ROOT / deployment["entrypoint"]))
    assert flow.name == "lm-training"
    params = deployment["parameters"]
    flow.validate_parameters(params)  # what Prefect does before each run
    parse_pipeline_config(params["pipeline_config"])
    assert params["pipeline_config"] == SEED_JOB["pipeline_config"], "the seed's example config"
    assert params["job_name"] == deployment["name"]
    assert "lm-training" in deployment["tags"]


@pytest.mark.parametrize(("path", "deployment"), DEPLOYMENTS, ids=IDS)
def test_schedules_parse_like_prefect_deploy_and_match_the_grammar(
    path: str, deployment: dict[str, Any]
) -> None:
    (entry,) = deployment["schedules"]
    created = _schedule_config_to_deployment_schedule(entry)  # prefect deploy's own mapping
    schedule = created["schedule"]
    expected = parse_schedule(EXPECTED_SCHEDULES[deployment["name"]])
    assert format_schedule(schedule) == expected.spec
    assert schedule.model_dump(exclude={"anchor_date"}, exclude_none=True) == (
        expected.to_prefect().model_dump(exclude={"anchor_date"}, exclude_none=True)
    )
    assert created["active"] is True


def test_process_deployments_use_the_training_pool_and_the_project_dir(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = _load(PREFECT_YAML)
    for deployment in data["deployments"]:
        assert deployment["work_pool"]["name"] == "training"
        assert not deployment["work_pool"].get("job_variables")
    # `prefect deploy` resolves {{ $PWD }} from the shell it runs in (the project root).
    monkeypatch.setenv("PWD", str(PROJECT_ROOT))
    (step,) = apply_values(data["pull"], {}, remove_notset=False)
    directory = Path(step["prefect.deployments.steps.set_working_directory"]["directory"])
    assert directory == PROJECT_ROOT
    for deployment in data["deployments"]:
        assert (directory / deployment["entrypoint"].split(":")[0]).is_file()


def _docker_job_variables(deployment: dict[str, Any]) -> dict[str, Any]:
    """The job variables as `prefect deploy` sends them, after the build step ran."""
    outputs = {"build-image": {"image": "lmcp/training:0.1.0"}}
    variables = apply_values(deployment["work_pool"]["job_variables"], outputs)
    assert isinstance(variables, dict)
    return variables


@pytest.mark.parametrize("deployment", _load(DOCKER_YAML)["deployments"], ids=lambda d: d["name"])
def test_docker_job_variables_are_valid_for_the_docker_worker(deployment: dict[str, Any]) -> None:
    assert deployment["work_pool"]["name"] == "training-docker"
    template = DockerWorker.get_default_base_job_template()
    variables = _docker_job_variables(deployment)
    # The server's check when a deployment is created on a docker pool:
    validate(variables, template["variables"], raise_on_error=True, ignore_required=True)
    # ... and the worker's rendering of the container it will start.
    unused_client = PrefectClient(api="http://127.0.0.1:9/api")  # no placeholder needs it
    config = asyncio.run(
        DockerWorkerJobConfiguration.from_template_and_values(
            template, variables, client=unused_client
        )
    )
    assert config.image == "lmcp/training:0.1.0"
    assert config.volumes == ["lmcp-state:/var/lib/lmcp"]
    assert config.env["LMCP_STATE_DIR"] == "/var/lib/lmcp"
    assert config.auto_remove is True


def test_docker_schema_check_rejects_a_bad_job_variable() -> None:
    template = DockerWorker.get_default_base_job_template()
    deployment = _load(DOCKER_YAML)["deployments"][0]
    bad = {**_docker_job_variables(deployment), "image_pull_policy": "Sometimes"}
    with pytest.raises(SchemaValidationError, match="image_pull_policy"):
        validate(bad, template["variables"], raise_on_error=True, ignore_required=True)


def test_docker_build_step_builds_the_project_image() -> None:
    data = _load(DOCKER_YAML)
    ((step_name, step),) = data["build"][0].items()
    build = import_object(step_name)
    args = {k: v for k, v in step.items() if k not in ("id", "requires")}
    inspect.signature(build).bind(**args)  # every key is an argument of the step
    assert step["id"] == "build-image"
    dockerfile = PROJECT_ROOT / step["dockerfile"]  # relative to the deploy cwd (root)
    assert dockerfile == DOCKER_DIR / "Dockerfile"
    text = dockerfile.read_text(encoding="utf-8")
    lines = [line.strip() for line in text.splitlines()]
    (pull_step,) = data["pull"]
    workdir = pull_step["prefect.deployments.steps.set_working_directory"]["directory"]
    assert f"WORKDIR {workdir}" in lines
    assert "COPY . ." in lines
    assert any(line.startswith("RUN pip install -c constraints.txt -e .") for line in lines)
    assert "torch==2.13.0" in text
    ignored = (PROJECT_ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".venv", ".lmcp", ".git"} <= set(ignored)
