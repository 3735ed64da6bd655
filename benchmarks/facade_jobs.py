"""Facade overhead on a real stack: GET /jobs with 1,000 jobs, and trigger -> running.

    .venv/bin/python benchmarks/facade_jobs.py [--jobs 1000] [--reps 30] [--triggers 5]

Starts the stack of `make up` (honcho: Prefect server + process worker + facade) on free
ports with a temporary state dir, then in one run:

1. creates N jobs (deployments of the training flow, the same fields the facade writes,
   half cron and half interval schedules) straight through the Prefect client;
2. reads all N jobs, interleaved, through the facade (GET /api/v1/automation/jobs, every
   page of 200, parsed into the SDK's JobList) and through the Prefect client directly
   (read_deployments with the same flow filter, sort and page size): p50, p99, ratio;
3. triggers a tiny job through the facade a few times (warm worker) and reads, from the
   server's own timestamps, when the flow run and its first stage task started.

The Prefect scheduler service is off during the benchmark: with it on, 1,000 scheduled
jobs make the server create thousands of runs while we measure. Goals: facade <= 1.2x
direct; trigger -> first stage running <= 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

for _key, _value in {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DVC_NO_ANALYTICS": "1",
}.items():
    os.environ.setdefault(_key, _value)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from deployments.stack import Stack, StackConfig, free_port  # noqa: E402

PAGE = 200
JOBS = "/api/v1/automation/jobs"
TINY_JOB: dict[str, Any] = {
    "name": "bench-trigger",
    "schedule": None,
    "pipeline_config": {
        "data": {"dataset_name": "training_data_v3", "preprocessing": {"tokenization": False}},
        "model": {
            "type": "transformer",
            "name": "bench-model",
            "config": {"batch_size": 4, "n_layer": 1, "n_head": 2, "n_embd": 32, "block_size": 32},
        },
        "training": {"epochs": 1, "max_steps": 3, "log_interval": 1},
        "evaluation": {"performance_threshold": 0.0, "max_batches": 1},
    },
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


# ---------------------------------------------------------------------- jobs at scale
async def create_jobs(client: Any, n: int, pool: str, concurrency: int = 2) -> None:
    """N deployments with the fields `deployments.jobs.create_job` writes.

    SQLite serializes writes: more concurrency only earns "database is locked" 503s,
    which are retried."""
    from prefect.exceptions import PrefectHTTPStatusError
    from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

    from deployments import jobs
    from deployments.schedules import parse_schedule

    def busy(exc: BaseException) -> bool:
        return isinstance(exc, PrefectHTTPStatusError) and exc.response.status_code == 503

    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    existing = await client.read_deployments(
        deployment_filter=DeploymentFilter(name=DeploymentFilterName(like_="bench-job-")),
        offset=n - 1,
        limit=1,
    )
    if existing:  # a reused --state-dir that holds the jobs already
        return
    flow_id = await client.create_flow_from_name(jobs.FLOW_NAME)
    schema = jobs.job_parameter_schema()
    config = TINY_JOB["pipeline_config"]
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        spec = f"cron:{i % 60} {i % 24} * * *" if i % 2 else f"interval:minutes={30 + i}"
        async with gate:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(busy),
                stop=stop_after_attempt(8),
                wait=wait_exponential(min=0.2, max=5),
                reraise=True,
            ):
                with attempt:
                    await create(i, spec)
        if (i + 1) % 250 == 0:
            print(f"  {i + 1} jobs created", flush=True)

    async def create(i: int, spec: str) -> None:
        await client.create_deployment(
            flow_id=flow_id,
            name=f"bench-job-{i:04d}",
            work_pool_name=pool,
            entrypoint=jobs.ENTRYPOINT,
            pull_steps=jobs.pull_steps(),
            parameters={"pipeline_config": config, "job_name": f"bench-job-{i:04d}"},
            parameter_openapi_schema=schema,
            enforce_parameter_schema=True,
            schedules=[parse_schedule(spec).to_deployment_schedule()],
            tags=[jobs.JOB_TAG],
        )

    await asyncio.gather(*(one(i) for i in range(n)))


async def direct_read_all(client: Any) -> int:
    """All jobs through the Prefect client: the facade's filter, sort and page size."""
    from prefect.client.schemas.sorting import DeploymentSort

    from deployments.jobs import job_flow_filter

    total, offset = 0, 0
    while True:
        rows = await client.read_deployments(
            flow_filter=job_flow_filter(), sort=DeploymentSort.NAME_ASC, limit=PAGE, offset=offset
        )
        total += len(rows)
        offset += PAGE
        if len(rows) < PAGE:
            return total


async def facade_read_all(http: httpx.AsyncClient) -> int:
    """All jobs through GET /jobs, parsed like the SDK does (api.schemas.JobList)."""
    from api.schemas import JobList

    total, page = 0, 1
    while True:
        response = await http.get(JOBS, params={"page": page, "page_size": PAGE})
        response.raise_for_status()
        body = JobList.model_validate(response.json())
        total += len(body.items)
        if page >= body.pages:
            return total
        page += 1


async def time_reads(
    reads: dict[str, Callable[[], Awaitable[int]]], reps: int, expect: int
) -> dict[str, list[float]]:
    """Interleave the reads (one warm-up each), so drift in machine load hits both."""
    samples: dict[str, list[float]] = {name: [] for name in reads}
    for rep in range(reps + 1):
        for name, read in reads.items():
            start = time.perf_counter()
            count = await read()
            elapsed = time.perf_counter() - start
            if count < expect:
                raise RuntimeError(f"{name} read {count} jobs, expected >= {expect}")
            if rep:
                samples[name].append(elapsed)
    return samples


# ---------------------------------------------------------------------- trigger latency
async def trigger_latency(
    trigger: Callable[[], Awaitable[UUID]], client: Any, deadline_s: float = 300
) -> dict[str, float]:
    """Trigger, then the server's start times of the flow run and its first task."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    t0 = datetime.now(UTC)
    run_id = await trigger()
    accepted = (datetime.now(UTC) - t0).total_seconds()
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        run = await client.read_flow_run(run_id)
        if run.state and run.state.is_final():
            break
        await asyncio.sleep(0.5)
    else:
        raise RuntimeError(f"run {run_id} did not finish in {deadline_s} s")
    await asyncio.sleep(2.0)  # task runs are recorded from events, a little later
    tasks = await client.read_task_runs(
        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
    )
    starts = [t.start_time for t in tasks if t.start_time]
    if not run.start_time or not starts or not run.state.is_completed():
        raise RuntimeError(f"run {run_id} ended {run.state_name} with {len(starts)} started tasks")
    pending = min(
        (
            s.timestamp
            for s in await client.read_flow_run_states(run_id)
            if s.type.value == "PENDING"
        ),
        default=run.start_time,
    )
    return {
        "trigger_http": accepted,
        "to_pending": (pending - t0).total_seconds(),
        "to_flow_running": (run.start_time - t0).total_seconds(),
        "to_first_stage": (min(starts) - t0).total_seconds(),
        "run_total": ((run.end_time or run.start_time) - t0).total_seconds(),
    }


# ---------------------------------------------------------------------- report
def report_reads(samples: dict[str, list[float]], n_jobs: int) -> float:
    print(f"\nGET all {n_jobs} jobs ({PAGE} per page), {len(samples['facade'])} reps each")
    print(f"{'path':<34}{'p50 (ms)':>10}{'p99 (ms)':>10}{'mean (ms)':>11}")
    for name, label in (
        ("facade", "facade GET /api/v1/automation/jobs"),
        ("direct", "Prefect client read_deployments"),
    ):
        values = [v * 1000 for v in samples[name]]
        print(
            f"{label:<34}{percentile(values, 50):>10.1f}{percentile(values, 99):>10.1f}"
            f"{statistics.fmean(values):>11.1f}"
        )
    ratio = statistics.median(samples["facade"]) / statistics.median(samples["direct"])
    print(f"ratio of medians facade/direct: {ratio:.2f}x  (goal <= 1.2x)")
    return ratio


def report_triggers(label: str, rows: list[dict[str, float]]) -> float:
    print(f"\n{label}: trigger -> running, {len(rows)} triggers on a warm worker (s)")
    keys = ("trigger_http", "to_pending", "to_flow_running", "to_first_stage", "run_total")
    print("".join(f"{k:>16}" for k in keys))
    for row in rows:
        print("".join(f"{row[k]:>16.2f}" for k in keys))
    p50 = statistics.median(r["to_first_stage"] for r in rows)
    worst = max(r["to_first_stage"] for r in rows)
    print(f"trigger -> first stage running: p50 {p50:.2f} s, max {worst:.2f} s  (goal <= 5 s)")
    return p50


async def run_benchmark(stack: Stack, n_jobs: int, reps: int, triggers: int) -> None:
    from prefect.client.orchestration import PrefectClient

    cfg = stack.config
    async with (
        PrefectClient(cfg.prefect_api_url) as client,
        httpx.AsyncClient(base_url=cfg.facade_url, timeout=120.0) as http,
    ):
        start = time.perf_counter()
        response = await http.post(JOBS, json=TINY_JOB)
        if response.status_code == 409:  # a reused --state-dir
            existing = await client.read_deployment_by_name(f"lm-training/{TINY_JOB['name']}")
            job_id = str(existing.id)
        else:
            response.raise_for_status()
            job_id = response.json()["id"]
        await create_jobs(client, n_jobs, cfg.training_pool)
        print(f"{n_jobs} jobs ready in {time.perf_counter() - start:.1f} s")
        samples = await time_reads(
            {"facade": lambda: facade_read_all(http), "direct": lambda: direct_read_all(client)},
            reps,
            expect=n_jobs,
        )
        report_reads(samples, n_jobs + 1)

        async def via_facade() -> UUID:
            response = await http.post(f"{JOBS}/{job_id}/trigger", json={"reason": "benchmark"})
            response.raise_for_status()
            return UUID(response.json()["flow_run_id"])

        noop_id = await _noop_deployment(client, cfg.training_pool)

        async def noop() -> UUID:
            return (await client.create_flow_run_from_deployment(noop_id)).id

        for label, trigger in (
            ("training flow, via the facade", via_facade),
            ("no-import flow (Prefect floor)", noop),
        ):
            await trigger_latency(trigger, client)  # warm-up: OS caches, imports
            report_triggers(
                label, [await trigger_latency(trigger, client) for _ in range(triggers)]
            )


async def _noop_deployment(client: Any, pool: str) -> UUID:
    from deployments.jobs import pull_steps

    flow_id = await client.create_flow_from_name("bench-noop")
    deployment_id: UUID = await client.create_deployment(
        flow_id=flow_id,
        name="bench-noop",
        work_pool_name=pool,
        entrypoint="benchmarks/noop_flow.py:noop",
        pull_steps=pull_steps(),
    )
    return deployment_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--triggers", type=int, default=5)
    parser.add_argument("--query-seconds", type=float, default=1.0, help="worker poll interval")
    parser.add_argument("--state-dir", help="reuse this state dir (its jobs are kept)")
    args = parser.parse_args(argv)
    state = (
        Path(args.state_dir).resolve()
        if args.state_dir
        else Path(tempfile.mkdtemp(prefix="lmcp-bench-")) / "state"
    )
    cfg = StackConfig(
        state_dir=state,
        prefect_port=free_port(),
        api_port=free_port(),
        ui=False,
        worker_query_seconds=args.query_seconds,
        extra_env={"PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false"},
    )
    print(f"stack: Prefect {cfg.prefect_api_url}, facade {cfg.facade_url}, logs {cfg.log_file}")
    with Stack(cfg) as stack:
        stack.wait_ready(timeout=240)
        asyncio.run(run_benchmark(stack, args.jobs, args.reps, args.triggers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
