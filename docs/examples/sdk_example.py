"""Drive the control panel from Python: create a job, run it, follow it, pause it.

Start the stack first (`make up`), then:

    .venv/bin/python docs/examples/sdk_example.py [--url http://127.0.0.1:8000] [--keep]

It creates a small job (so the run takes about a minute on a CPU), triggers it with an
idempotency key, follows it stage by stage until it ends, prints the outcome, pauses the
job and, unless --keep is given, deletes it again.
"""

from __future__ import annotations

import argparse
import sys
import uuid

from api.client import APIError, LMCPClient
from api.schemas import RunStatus

TINY_JOB = {
    "name": f"sdk-example-{uuid.uuid4().hex[:6]}",
    "schedule": "interval:hours=6",
    "description": "Created by docs/examples/sdk_example.py",
    "pipeline_config": {
        "data": {"dataset_name": "tinyshakespeare", "preprocessing": {"tokenization": False}},
        "model": {
            "type": "transformer",
            "name": "sdk_example_model",
            "config": {"n_layer": 1, "n_embd": 32, "block_size": 32, "batch_size": 4},
        },
        "training": {"epochs": 1, "max_steps": 20},
        "evaluation": {"performance_threshold": 0.0},
    },
}


def show(run: RunStatus) -> None:
    progress = f"{run.progress:5.1f}%" if run.progress is not None else "   -  "
    print(f"  {run.state or '?':<12} stage={run.current_stage or '-':<17} progress={progress}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the facade's base URL")
    parser.add_argument("--keep", action="store_true", help="keep the job afterwards")
    args = parser.parse_args()

    with LMCPClient(args.url) as lmcp:
        health = lmcp.health()
        if health.status != "ok":
            print(f"stack not ready: {health.failing} -> {health.components}", file=sys.stderr)
            return 1
        try:
            job = lmcp.create_job(TINY_JOB)
        except APIError as exc:  # e.g. ValidationError with exc.fields
            print(f"could not create the job: {exc.message} {exc.field_names}", file=sys.stderr)
            return 1
        print(f"job {job.name} ({job.id}) schedule={job.schedule} next={job.next_run_time}")

        run = lmcp.trigger_job(job.id, idempotency_key=f"{job.id}-first", reason="sdk example")
        print(f"run {run.flow_run_name} ({run.flow_run_id})")
        final = lmcp.wait_for_run(run.flow_run_id, timeout=900, poll=3, on_update=show)
        print(f"outcome: {final.state}: {final.state_message or ''}")
        for stage in final.stages:
            print(f"  {stage.name:<17} {stage.state}")

        lmcp.pause_job(job.id)
        if not args.keep:
            lmcp.delete_job(job.id)
        return 0 if final.state == "Completed" else 2


if __name__ == "__main__":
    raise SystemExit(main())
