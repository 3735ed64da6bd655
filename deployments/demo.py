"""`make demo`: the seed's example job, end to end, through the REST facade.

1. start the stack (or use one that `make up` already runs on the same ports);
2. POST docs/examples/seed_job.json to /api/v1/automation/jobs (a job of the same name
   from an earlier demo is deleted first, so the demo can run again);
3. trigger it, follow the run through /api/v1/monitoring/training/jobs with a progress
   bar (stage and progress);
4. print each stage's outcome, the final validation loss, the metric against the
   threshold and the registered model version (from the MLflow run of this flow run);
5. stop the stack it started. Exit status 1 unless the run completed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from api.client import LMCPClient
from api.client_errors import APIError
from api.schemas import STAGE_NAMES, Job, RunStatus
from deployments.stack import Stack, StackConfig, StackError, banner


def run_demo(
    cfg: StackConfig,
    job_file: Path,
    *,
    ready_timeout: float = 180.0,
    run_timeout: float = 600.0,
    console: Console | None = None,
) -> int:
    """Run the demo; returns the process exit status (0 only if the run completed)."""
    out = console or Console(soft_wrap=True)  # long URLs stay on one line
    job = json.loads(job_file.read_text(encoding="utf-8"))
    stack = None if _healthy(cfg) else Stack(cfg)
    try:
        if stack is None:
            out.print(f"Using the stack already running at {cfg.facade_url}")
        else:
            out.print(f"Starting the stack (Prefect server, worker, facade); logs: {cfg.log_file}")
            started = time.monotonic()
            stack.start()
            stack.wait_ready(ready_timeout)
            out.print(f"Stack ready in {time.monotonic() - started:.0f} s")
        with LMCPClient(cfg.facade_url, timeout=60.0) as api:
            created = _fresh_job(api, job, out)
            trigger = api.trigger_job(created.id, reason="make demo")
            out.print(f"Triggered run [bold]{trigger.flow_run_name}[/] ({trigger.flow_run_id})")
            final = _follow(api, str(trigger.flow_run_id), run_timeout, out)
        _report(out, final, job, cfg)
        title = "Where to look" + (
            "" if stack is None else " (the demo stopped its stack; `make up` serves it again)"
        )
        out.print(banner(cfg, title))
        return 0 if final.state_type == "COMPLETED" else 1
    except KeyboardInterrupt:
        out.print("\ninterrupted")
        return 130
    except (StackError, APIError, TimeoutError) as exc:
        out.print(f"[red]demo failed:[/] {exc}")
        return 1
    finally:
        if stack is not None:
            out.print("Stopping the stack ...")
            stack.stop()
            out.print("Stack stopped.")


def _healthy(cfg: StackConfig) -> bool:
    try:
        return httpx.get(cfg.health_url, timeout=2.0).status_code == 200
    except httpx.TransportError:
        return False


def _fresh_job(api: LMCPClient, job: dict[str, Any], out: Console) -> Job:
    """Create the job; an earlier demo's job of the same name is replaced."""
    for existing in api.iter_jobs(page_size=200):
        if existing.name == job["name"]:
            api.delete_job(existing.id)
            out.print(f"Deleted the job '{existing.name}' of an earlier demo ({existing.id})")
    created = api.create_job(job)
    out.print(
        f"Created job [bold]{created.name}[/] ({created.id}): schedule {created.schedule}, "
        f"next scheduled run {created.next_run_time:%Y-%m-%d %H:%M} UTC"
        if created.next_run_time
        else f"Created job [bold]{created.name}[/] ({created.id})"
    )
    return created


def _follow(api: LMCPClient, run_id: str, timeout: float, out: Console) -> RunStatus:
    """Poll the run through the monitoring endpoint, with a stage progress bar."""
    columns = (
        TextColumn("{task.description:<38}"),
        BarColumn(),
        TextColumn("{task.fields[stage_pct]:>5}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=out, transient=False) as bar:
        task = bar.add_task("waiting for a worker", total=len(STAGE_NAMES), stage_pct="")
        seen: set[tuple[str, str, int]] = set()

        def update(run: RunStatus) -> None:
            done = sum(1 for s in run.stages if s.state_type == "COMPLETED")
            current = next((s for s in run.stages if s.name == run.current_stage), None)
            progress = current.progress if current and current.progress is not None else None
            partial = 0.0
            if current and current.state_type != "COMPLETED" and progress is not None:
                partial = progress / 100
            pct = f"{progress:.0f}%" if progress is not None else ""
            description = f"{run.state or '?':<10} stage {run.current_stage or '-'}"
            bar.update(
                task,
                completed=min(done + partial, len(STAGE_NAMES)),
                description=description,
                stage_pct=pct,
            )
            # Without a terminal (CI logs, pipes) the bar is drawn only at the end:
            # print a line per state/stage change and per 10% of a stage instead.
            key = (run.state or "", run.current_stage or "", int((progress or 0) // 10))
            if not out.is_terminal and key not in seen:
                seen.add(key)
                out.print(f"{description} {pct}".rstrip())

        return api.wait_for_run(run_id, timeout=timeout, poll=1.0, on_update=update)


def _mlflow_outcome(cfg: StackConfig, flow_run_id: str) -> dict[str, Any]:
    """Metrics and registered version of the MLflow run that this flow run wrote."""
    from mlflow import MlflowClient

    tracking = cfg.settings().tracking_uri
    client = MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    experiment = client.get_experiment_by_name("lm-training")
    if experiment is None:
        return {}
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`prefect.flow_run_id` = '{flow_run_id}'",
        max_results=1,
    )
    if not runs:
        return {}
    run = runs[0]
    return {"metrics": dict(run.data.metrics), "tags": dict(run.data.tags), "id": run.info.run_id}


def _stage_table(run: RunStatus) -> Table:
    table = Table(title=f"Run {run.name}: {run.state}", title_justify="left")
    for column in ("stage", "outcome", "seconds"):
        table.add_column(column)
    by_name = {s.name: s for s in run.stages}
    for name in STAGE_NAMES:
        stage = by_name.get(name)
        if stage is None or stage.state is None:
            table.add_row(name, "not run", "")
            continue
        seconds = ""
        if stage.start_time and stage.end_time:
            seconds = f"{(stage.end_time - stage.start_time).total_seconds():.1f}"
        table.add_row(name, stage.state, seconds)
    return table


def _report(out: Console, run: RunStatus, job: dict[str, Any], cfg: StackConfig) -> None:
    from flows.config import parse_pipeline_config

    out.print(_stage_table(run))
    if run.state_message:
        out.print(f"Prefect: {run.state_message}")
    evaluation = parse_pipeline_config(job["pipeline_config"]).evaluation
    found = _mlflow_outcome(cfg, str(run.id))
    metrics, tags = found.get("metrics", {}), found.get("tags", {})
    if "val_loss" in metrics:
        baseline = metrics.get("unigram_loss")
        extra = f" (unigram baseline {baseline:.4f})" if baseline is not None else ""
        out.print(f"Final validation loss: [bold]{metrics['val_loss']:.4f}[/]{extra}")
    value = metrics.get(evaluation.metric)
    if value is not None:
        verdict = "passed" if value >= evaluation.performance_threshold else "below threshold"
        out.print(
            f"{evaluation.metric}: {value:.4f} vs threshold "
            f"{evaluation.performance_threshold}: [bold]{verdict}[/]"
        )
    if tags.get("lmcp.model_version"):
        out.print(
            f"Registered model: [bold]{tags['lmcp.model_name']}[/] version "
            f"[bold]{tags['lmcp.model_version']}[/] (alias 'staging')"
        )
    else:
        out.print("Registered model: none (the metric did not reach the threshold)")
    if found.get("id"):
        out.print(f"MLflow run: {found['id']} in {cfg.settings().tracking_uri}")
    out.print(f"Prefect flow run: {cfg.prefect_ui_url}/runs/flow-run/{run.id}")
