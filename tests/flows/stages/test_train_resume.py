"""Crash-resume: SIGKILL a train_model subprocess after a checkpoint, then run it again.

The rerun must continue from that checkpoint's step (not from zero) and finish the
planned steps, with the loss history continuing where the killed run left it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from flows.settings import Settings
from flows.stages import mlflow_utils
from flows.stages.context import StageContext
from flows.stages.model import initialize_model
from flows.stages.train import train_model
from tests.support.synthetic import synthetic_state

TOTAL_STEPS, INTERVAL = 400, 10
KILL_AT_STEP = 20  # kill once a checkpoint at or after this step exists

CHILD = """
import json, sys
from flows.settings import get_settings
from flows.stages.context import StageContext
from flows.stages.train import train_model
state = json.loads(open(sys.argv[1]).read())
train_model(state, StageContext(settings=get_settings(), run_id=sys.argv[2]))
"""


def make_state(root: Path) -> dict:
    return synthetic_state(
        root,
        training={"epochs": 1000, "max_steps": TOTAL_STEPS, "checkpoint_interval": INTERVAL},
    )


def checkpoint_step(ckpt_dir: Path) -> int | None:
    latest = ckpt_dir / "latest"
    if not latest.exists():
        return None
    text = latest.read_text().strip()
    return int(text.removeprefix("step")) if text.startswith("step") else None


def start_child(state_file: Path, settings: Settings, run_id: str, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "MASTER_PORT"}  # ours is taken
    env["LMCP_STATE_DIR"] = str(settings.state_dir)
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-c", CHILD, str(state_file), run_id],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[3],
        )


def test_killed_training_resumes_from_its_checkpoint(settings: Settings, tmp_path: Path) -> None:
    ctx = StageContext(settings=settings, run_id="t1")
    state = make_state(tmp_path)
    state["mlflow_run_id"] = mlflow_utils.ensure_run(state, ctx)
    state.update(initialize_model(state, ctx))
    state_file = tmp_path / "state.json"
    state_file.write_text(json.dumps(state))

    log = tmp_path / "child.log"
    child = start_child(state_file, settings, ctx.run_id, log)
    try:
        while (step := checkpoint_step(ctx.checkpoint_dir)) is None or step < KILL_AT_STEP:
            if child.poll() is not None:
                raise AssertionError(
                    f"training exited (rc={child.returncode}) before step "
                    f"{KILL_AT_STEP}: {log.read_text()[-2000:]}"
                )
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()  # no-op once it is dead; stops it if the test failed above
        child.wait()
    assert child.returncode == -signal.SIGKILL
    crashed_at = checkpoint_step(ctx.checkpoint_dir)  # a later one may have landed before the kill
    assert crashed_at is not None and KILL_AT_STEP <= crashed_at < TOTAL_STEPS

    training = train_model(state, ctx)["training"]
    assert training["resumed_from_step"] == crashed_at
    assert training["steps"] == TOTAL_STEPS
    assert checkpoint_step(ctx.checkpoint_dir) == TOTAL_STEPS
    history = json.loads(Path(training["history_path"]).read_text())
    assert [h["step"] for h in history] == list(range(10, TOTAL_STEPS + 1, 10))
    assert history[-1]["train_loss"] < history[0]["train_loss"] / 4
