"""The stack's configuration and failure paths, without starting a Prefect server."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

from deployments.cli import build_parser
from deployments.stack import Stack, StackConfig, StackError, banner, free_port


def test_env_points_every_process_at_the_stack(tmp_path: Path) -> None:
    config = StackConfig(state_dir=tmp_path, prefect_port=4301, api_port=8001)
    env = config.env(base={"PATH": "/usr/bin", "PREFECT_API_DATABASE_CONNECTION_URL": "x"})
    assert env["PREFECT_API_URL"] == "http://127.0.0.1:4301/api"
    assert env["PREFECT_HOME"] == str(tmp_path / "prefect-home")
    assert env["LMCP_STATE_DIR"] == str(tmp_path)
    assert env["LMCP_API_PORT"] == "8001"
    assert env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] == (
        f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}"
    )
    assert "PREFECT_API_DATABASE_CONNECTION_URL" not in env  # no conflicting alias
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    assert float(env["PREFECT_WORKER_QUERY_SECONDS"]) <= 2


def test_a_postgres_url_is_used_for_the_prefect_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "postgresql+asyncpg://lmcp:secret@db:5432/prefect"
    monkeypatch.setenv("PREFECT_API_DATABASE_CONNECTION_URL", url)
    config = StackConfig.from_settings(state_dir=tmp_path)
    assert config.env(base={})["PREFECT_SERVER_DATABASE_CONNECTION_URL"] == url


def test_a_busy_port_is_refused_with_its_name(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        stack = Stack(StackConfig(state_dir=tmp_path, prefect_port=port, api_port=free_port()))
        with pytest.raises(StackError, match=f"127.0.0.1:{port} \\(for prefect\\)"):
            stack.start()
    assert not stack.running()


def test_wait_ready_reports_a_supervisor_that_died(tmp_path: Path) -> None:
    config = StackConfig(
        state_dir=tmp_path, prefect_port=free_port(), api_port=free_port(), processes=("nope",)
    )
    stack = Stack(config).start()
    try:
        with pytest.raises(StackError, match="exited while waiting for the Prefect server"):
            stack.wait_ready(timeout=60)
        assert "no process 'nope'" in config.log_file.read_text()
    finally:
        stack.stop()
    assert not stack.running()


def test_cli_parses_every_command_and_the_banner_names_the_urls(tmp_path: Path) -> None:
    parser = build_parser()
    for argv in (["up"], ["demo"], ["down"], ["wait-prefect", "--timeout", "1"]):
        assert callable(parser.parse_args(argv).func)
    args = parser.parse_args(["up", "--prefect-port", "4310", "--api-port", "8010"])
    assert (args.prefect_port, args.api_port) == (4310, 8010)
    text = banner(StackConfig(state_dir=tmp_path, prefect_port=4310, api_port=8010))
    assert "http://127.0.0.1:8010/docs" in text
    assert "http://127.0.0.1:4310" in text
    assert f"mlflow ui --backend-store-uri sqlite:///{tmp_path / 'mlflow.db'}" in text
