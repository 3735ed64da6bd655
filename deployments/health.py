"""Readiness of what jobs need: the Prefect API and a worker polling the training pool.

`check_health` never raises: every component answers "ok" or "unavailable" with a
detail naming the cause, so `make up` / `make demo` can wait on it and say what is
missing.
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.objects import WorkerStatus
from prefect.exceptions import ObjectNotFound

from api.schemas import ComponentHealth, Health

READY_TIMEOUT_S = 3.0


def public_url(url: str) -> str:
    """The URL without credentials, for messages."""
    try:
        return str(httpx.URL(url).copy_with(username=None, password=None))
    except Exception:
        return "<invalid url>"


def _ok(detail: str) -> ComponentHealth:
    return ComponentHealth(status="ok", detail=detail)


def _down(detail: str) -> ComponentHealth:
    return ComponentHealth(status="unavailable", detail=detail)


async def check_prefect(api_url: str, headers: dict[str, str] | None = None) -> ComponentHealth:
    """Prefect's /api/ready (which checks its database)."""
    where = public_url(api_url)
    try:
        async with httpx.AsyncClient(timeout=READY_TIMEOUT_S, headers=headers) as http:
            response = await http.get(api_url.rstrip("/") + "/ready")
    except httpx.HTTPError as exc:
        return _down(f"Prefect API at {where} is unreachable ({type(exc).__name__})")
    if response.status_code != 200:
        return _down(f"Prefect API at {where} is not ready (HTTP {response.status_code})")
    return _ok(f"Prefect API at {where} is ready")


async def check_worker(client: PrefectClient, pool: str) -> ComponentHealth:
    """At least one worker of `pool` is ONLINE (heartbeat within 3 heartbeat intervals)."""
    try:
        await client.read_work_pool(pool)
        workers = await client.read_workers_for_work_pool(pool)
    except ObjectNotFound:
        return _down(
            f"work pool '{pool}' does not exist; start a worker: "
            f"prefect worker start --pool {pool} --type process"
        )
    except httpx.HTTPError as exc:
        return _down(f"could not read the workers of pool '{pool}' ({type(exc).__name__})")
    online = [w for w in workers if w.status == WorkerStatus.ONLINE]
    if not online:
        seen = max((w.last_heartbeat_time for w in workers if w.last_heartbeat_time), default=None)
        last = f"; last heartbeat {_ago(seen)}" if seen else ""
        return _down(f"no worker is polling work pool '{pool}'{last}")
    newest = max(online, key=lambda w: w.last_heartbeat_time or datetime.min.replace(tzinfo=UTC))
    return _ok(
        f"{len(online)} worker(s) polling pool '{pool}'; {newest.name} heartbeat "
        f"{_ago(newest.last_heartbeat_time)}"
    )


def _ago(when: datetime | None) -> str:
    if when is None:
        return "never"
    seconds = (datetime.now(UTC) - when).total_seconds()
    return f"{max(seconds, 0):.0f}s ago"


async def check_health(
    api_url: str, client: PrefectClient, pool: str, headers: dict[str, str] | None = None
) -> Health:
    components = {"facade": _ok("serving requests")}
    components["prefect"] = await check_prefect(api_url, headers)
    if components["prefect"].status == "ok":
        components["worker"] = await check_worker(client, pool)
    else:
        components["worker"] = _down("not checked: the Prefect API is unavailable")
    failing = [name for name, c in components.items() if c.status != "ok"]
    return Health(status="unavailable" if failing else "ok", components=components, failing=failing)
