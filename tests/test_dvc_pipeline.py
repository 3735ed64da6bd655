"""`dvc repro` works in a fresh clone and reproduces the committed dvc.lock exactly.

The clone is emulated by copying the files git would commit (tracked + untracked, not
ignored) into a new git repository, so the test also runs before the first commit.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _fresh_clone(dest: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split("\0")  # fmt: skip
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():  # skip entries deleted in the working tree
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def test_dvc_repro_in_a_fresh_clone(tmp_path: Path) -> None:
    repo = tmp_path / "clone"
    repo.mkdir()
    _fresh_clone(repo)
    assert not (repo / "data" / "processed").exists()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(tmp_path / "dvc-site"),
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "clone"]):
        assert _run(cmd, repo, env).returncode == 0
    # The stage imports the clone's code, not the editable install's.
    where = _run([sys.executable, "-c", "import flows.stages.data as m; print(m.__file__)"],
                 repo, env)  # fmt: skip
    assert Path(where.stdout.strip()).resolve().is_relative_to(repo.resolve()), where.stderr
    dvc = str(BIN / "dvc")

    before = _run([dvc, "status", "--json"], repo, env)
    assert before.returncode == 0, before.stderr
    # Only the (uncommitted) output is missing: deps and params match the committed lock.
    status = json.loads(before.stdout)
    assert status.keys() == {"prepare_data"}
    assert [list(change) for change in status["prepare_data"]] == [["changed outs"]], (
        f"dvc.lock is stale ({status}): run `dvc repro` and commit dvc.lock"
    )
    assert list(status["prepare_data"][0]["changed outs"]) == ["data/processed"]

    repro = _run([dvc, "repro"], repo, env)
    assert repro.returncode == 0, repro.stdout + repro.stderr
    after = _run([dvc, "status", "--json"], repo, env)
    assert json.loads(after.stdout) == {}
    # Same hashes as committed: the processed data is reproducible bit for bit.
    diff = _run(["git", "status", "--porcelain", "dvc.lock", "data/processed_metrics.json"],
                repo, env)  # fmt: skip
    assert diff.stdout == "", diff.stdout
    assert (repo / "data" / "processed" / "train.npy").is_file()
    assert "/processed" in (repo / "data" / ".gitignore").read_text().split()
