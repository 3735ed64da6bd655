"""`lmcp` / `python -m deployments.cli`: run the stack (`up`), the demo, and helpers.

python -m deployments.cli up            # Prefect server + worker + facade until Ctrl-C
python -m deployments.cli demo          # up, run the seed's example job, print, down
python -m deployments.cli down          # stop a stack started by `up` (SIGTERM to it)
python -m deployments.cli wait-prefect  # (Procfile) wait for $PREFECT_API_URL/ready
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from deployments.stack import Stack, StackConfig, StackError, banner
from flows.settings import PROJECT_ROOT, get_settings

SEED_JOB = PROJECT_ROOT / "docs" / "examples" / "seed_job.json"


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _stop_on_signals() -> None:
    """SIGTERM and SIGINT stop the stack in order (SIGINT even where the shell ignored
    it, as a non-interactive shell does for `cmd &`)."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _raise_interrupt)


def _stack_config(args: argparse.Namespace) -> StackConfig:
    overrides: dict[str, object] = {
        "prefect_port": args.prefect_port,
        "api_port": args.api_port,
        "ui": not args.no_ui,
    }
    if args.state_dir:
        overrides["state_dir"] = Path(args.state_dir).expanduser().resolve()
    return StackConfig.from_settings(get_settings(), **overrides)


def _pidfile(state_dir: Path) -> Path:
    return state_dir / "stack.pid"


def cmd_up(args: argparse.Namespace) -> int:
    cfg = _stack_config(args)
    _stop_on_signals()
    stack = Stack(cfg, output=sys.stdout)
    rc = 0
    try:
        stack.start()
        _pidfile(cfg.state_dir).write_text(str(os.getpid()))
        stack.wait_ready(args.timeout)
        print(banner(cfg) + "Ctrl-C (or `python -m deployments.cli down`) stops it.\n", flush=True)
        while stack.running():
            time.sleep(0.5)
        print("error: a stack process exited; stopping the others", file=sys.stderr)
        rc = 1
    except KeyboardInterrupt:
        print("\nstopping the stack ...", flush=True)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        rc = 1
    finally:
        pids = stack.stop()
        _pidfile(cfg.state_dir).unlink(missing_ok=True)
        print(f"stack stopped ({len(pids)} processes ended)", flush=True)
        if stack.leftovers:
            print(f"stopped {len(stack.leftovers)} flow-run processes left by the worker")
    return rc


def cmd_down(args: argparse.Namespace) -> int:
    state_dir = Path(args.state_dir).resolve() if args.state_dir else get_settings().state_dir
    pidfile = _pidfile(state_dir)
    if not pidfile.exists():
        print(f"no running stack recorded in {pidfile}")
        return 0
    pid = int(pidfile.read_text().strip())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pidfile.unlink(missing_ok=True)
        print(f"stack process {pid} was already gone")
        return 0
    for _ in range(120):
        if not pidfile.exists():
            print("stack stopped")
            return 0
        time.sleep(0.5)
    print(f"stack process {pid} did not stop within 60 s", file=sys.stderr)
    return 1


def cmd_demo(args: argparse.Namespace) -> int:
    from deployments.demo import run_demo

    cfg = _stack_config(args)
    _stop_on_signals()
    return run_demo(
        cfg,
        Path(args.job_file),
        ready_timeout=args.timeout,
        run_timeout=args.run_timeout,
    )


def cmd_wait_prefect(args: argparse.Namespace) -> int:
    """Block until the Prefect server answers /api/ready (used by the Procfile)."""
    import httpx

    url = os.environ.get("PREFECT_API_URL", "http://127.0.0.1:4200/api").rstrip("/") + "/ready"
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return 0
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    print(f"the Prefect server at {url} was not ready after {args.timeout:g} s", file=sys.stderr)
    return 1


def _add_stack_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prefect-port", type=int, default=int(os.environ.get("PREFECT_PORT", 4200)))
    p.add_argument("--api-port", type=int, default=int(os.environ.get("LMCP_API_PORT", 8000)))
    p.add_argument("--state-dir", help="default: $LMCP_STATE_DIR or <project>/.lmcp")
    p.add_argument("--no-ui", action="store_true", help="serve the Prefect API without its UI")
    p.add_argument("--timeout", type=float, default=180.0, help="readiness deadline (s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lmcp", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run Prefect server + worker + REST facade until Ctrl-C")
    _add_stack_args(up)
    up.set_defaults(func=cmd_up)
    demo = sub.add_parser("demo", help="start the stack, run the seed's example job, stop")
    _add_stack_args(demo)
    demo.add_argument("--job-file", default=str(SEED_JOB), help="job JSON to POST")
    demo.add_argument("--run-timeout", dest="run_timeout", type=float, default=600.0)
    demo.set_defaults(func=cmd_demo)
    down = sub.add_parser("down", help="stop the stack started by `up`")
    down.add_argument("--state-dir")
    down.set_defaults(func=cmd_down)
    wait = sub.add_parser("wait-prefect", help="wait until $PREFECT_API_URL/ready answers 200")
    wait.add_argument("--timeout", type=float, default=120.0)
    wait.set_defaults(func=cmd_wait_prefect)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
