"""Python SDK for the facade: `LMCPClient` (sync) and `AsyncLMCPClient` (async), on httpx.

    from api.client import LMCPClient
    with LMCPClient("http://127.0.0.1:8000") as lmcp:
        job = lmcp.create_job({"name": "nightly", "schedule": "cron:0 2 * * *",
                               "pipeline_config": {...}})
        run = lmcp.trigger_job(job.id, idempotency_key="nightly-2026-01-01")
        final = lmcp.wait_for_run(run.flow_run_id, timeout=600)

Every method returns a pydantic model from api/schemas.py. Error answers raise an
`APIError` subclass carrying the server's code, message and field list.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import httpx
from pydantic import BaseModel

from api.client_errors import (
    APIError,
    AuthError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    ServerError,
    ServiceUnavailableError,
    ValidationError,
    raise_for_error,
)
from api.schemas import (
    Health,
    Job,
    JobCreate,
    JobList,
    RunList,
    RunStatus,
    TriggerRequest,
    TriggerResponse,
)

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
JOBS = "/api/v1/automation/jobs"
MONITORING = "/api/v1/monitoring"


# ------------------------------------------------------------------------------ requests


@dataclass
class _Call:
    """One request, described once for both clients."""

    method: str
    path: str
    model: type[BaseModel] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    accept_statuses: tuple[int, ...] = ()

    def parse(self, response: httpx.Response) -> Any:
        if response.status_code not in self.accept_statuses:
            raise_for_error(response)
        if self.model is None:
            return None
        return self.model.model_validate(response.json())


def _body(data: BaseModel | dict[str, Any]) -> Any:
    """Models are dumped; dicts go as they are, so the server validates them and its
    422 names the bad fields."""
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json", exclude_unset=True)
    return data


def _job_path(job_id: str | UUID, action: str = "") -> str:
    return f"{JOBS}/{job_id}" + (f"/{action}" if action else "")


def create_job_call(job: JobCreate | dict[str, Any]) -> _Call:
    return _Call("POST", JOBS, Job, json=_body(job))


def list_jobs_call(page: int, page_size: int) -> _Call:
    return _Call("GET", JOBS, JobList, params={"page": page, "page_size": page_size})


def trigger_call(
    job_id: str | UUID,
    overrides: dict[str, Any] | None,
    reason: str | None,
    idempotency_key: str | None,
) -> _Call:
    body = TriggerRequest(overrides=overrides or {}, reason=reason)
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    return _Call(
        "POST",
        _job_path(job_id, "trigger"),
        TriggerResponse,
        json=body.model_dump(mode="json"),
        headers=headers,
    )


def list_runs_call(
    job_id: str | UUID | None,
    job_name: str | None,
    state: str | Iterable[str] | None,
    page: int,
    page_size: int,
) -> _Call:
    params: dict[str, Any] = {"page": page, "page_size": page_size}
    if job_id:
        params["job_id"] = str(job_id)
    if job_name:
        params["job_name"] = job_name
    if state:
        params["state"] = [state] if isinstance(state, str) else list(state)
    return _Call("GET", f"{MONITORING}/training/jobs", RunList, params=params)


def health_call() -> _Call:
    return _Call("GET", f"{MONITORING}/health", Health, accept_statuses=(503,))


class _WaitState:
    def __init__(self, timeout: float) -> None:
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline

    def error(self, what: str, last: Any) -> TimeoutError:
        state = getattr(last, "state", None) or getattr(last, "failing", None)
        return TimeoutError(f"{what} not reached within {self.timeout:.0f}s (last: {state})")


# ------------------------------------------------------------------------------ sync


class LMCPClient:
    """Synchronous client. Pass `http_client` to reuse an httpx.Client (e.g. a
    FastAPI TestClient); otherwise one is created for `base_url`."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float = 30.0,
        headers: dict[str, str] | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        self._owns = http_client is None
        self._http = http_client or httpx.Client(
            base_url=base_url, timeout=timeout, headers=headers
        )

    def __enter__(self) -> LMCPClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns:
            self._http.close()

    def _send(self, call: _Call) -> Any:
        try:
            response = self._http.request(
                call.method,
                call.path,
                params=call.params or None,
                json=call.json,
                headers=call.headers or None,
            )
        except httpx.TransportError as exc:
            raise ServiceUnavailableError(0, "unreachable", f"facade unreachable: {exc}") from exc
        return call.parse(response)

    # automation
    def create_job(self, job: JobCreate | dict[str, Any]) -> Job:
        return self._send(create_job_call(job))  # type: ignore[no-any-return]

    def list_jobs(self, page: int = 1, page_size: int = 50) -> JobList:
        return self._send(list_jobs_call(page, page_size))  # type: ignore[no-any-return]

    def iter_jobs(self, page_size: int = 100) -> Iterator[Job]:
        page = 1
        while True:
            batch = self.list_jobs(page=page, page_size=page_size)
            yield from batch.items
            if page >= batch.pages:
                return
            page += 1

    def get_job(self, job_id: str | UUID) -> Job:
        return self._send(_Call("GET", _job_path(job_id), Job))  # type: ignore[no-any-return]

    def delete_job(self, job_id: str | UUID) -> None:
        self._send(_Call("DELETE", _job_path(job_id)))

    def trigger_job(
        self,
        job_id: str | UUID,
        *,
        overrides: dict[str, Any] | None = None,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> TriggerResponse:
        call = trigger_call(job_id, overrides, reason, idempotency_key)
        return self._send(call)  # type: ignore[no-any-return]

    def pause_job(self, job_id: str | UUID) -> Job:
        return self._send(_Call("POST", _job_path(job_id, "pause"), Job))  # type: ignore[no-any-return]

    def resume_job(self, job_id: str | UUID) -> Job:
        return self._send(_Call("POST", _job_path(job_id, "resume"), Job))  # type: ignore[no-any-return]

    # monitoring
    def health(self) -> Health:
        """The health report; a 503 answer is returned (status "unavailable"), not raised."""
        return self._send(health_call())  # type: ignore[no-any-return]

    def list_runs(
        self,
        *,
        job_id: str | UUID | None = None,
        job_name: str | None = None,
        state: str | Iterable[str] | None = None,
        page: int = 1,
        page_size: int = 20,
    ) -> RunList:
        call = list_runs_call(job_id, job_name, state, page, page_size)
        return self._send(call)  # type: ignore[no-any-return]

    def get_run(self, run_id: str | UUID) -> RunStatus:
        path = f"{MONITORING}/training/jobs/{run_id}"
        return self._send(_Call("GET", path, RunStatus))  # type: ignore[no-any-return]

    def wait_for_run(
        self,
        run_id: str | UUID,
        timeout: float = 600.0,
        poll: float = 2.0,
        on_update: Callable[[RunStatus], None] | None = None,
    ) -> RunStatus:
        """Follow a run until it reaches a final state (Completed, Failed, Crashed,
        Cancelled); TimeoutError after `timeout` seconds."""
        wait, last = _WaitState(timeout), None
        while True:
            last = self.get_run(run_id)
            if on_update:
                on_update(last)
            if last.is_final:
                return last
            if wait.expired():
                raise wait.error("a final state", last)
            time.sleep(poll)

    def wait_until_healthy(self, timeout: float = 120.0, poll: float = 1.0) -> Health:
        wait, last = _WaitState(timeout), None
        while True:
            try:
                last = self.health()
                if last.status == "ok":
                    return last
            except ServiceUnavailableError:
                pass
            if wait.expired():
                raise wait.error("health 'ok'", last)
            time.sleep(poll)


# ------------------------------------------------------------------------------ async


class AsyncLMCPClient:
    """Asynchronous twin of `LMCPClient` (same methods, awaitable)."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float = 30.0,
        headers: dict[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._owns = http_client is None
        self._http = http_client or httpx.AsyncClient(
            base_url=base_url, timeout=timeout, headers=headers
        )

    async def __aenter__(self) -> AsyncLMCPClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns:
            await self._http.aclose()

    async def _send(self, call: _Call) -> Any:
        try:
            response = await self._http.request(
                call.method,
                call.path,
                params=call.params or None,
                json=call.json,
                headers=call.headers or None,
            )
        except httpx.TransportError as exc:
            raise ServiceUnavailableError(0, "unreachable", f"facade unreachable: {exc}") from exc
        return call.parse(response)

    async def create_job(self, job: JobCreate | dict[str, Any]) -> Job:
        return await self._send(create_job_call(job))  # type: ignore[no-any-return]

    async def list_jobs(self, page: int = 1, page_size: int = 50) -> JobList:
        return await self._send(list_jobs_call(page, page_size))  # type: ignore[no-any-return]

    async def get_job(self, job_id: str | UUID) -> Job:
        return await self._send(_Call("GET", _job_path(job_id), Job))  # type: ignore[no-any-return]

    async def delete_job(self, job_id: str | UUID) -> None:
        await self._send(_Call("DELETE", _job_path(job_id)))

    async def trigger_job(
        self,
        job_id: str | UUID,
        *,
        overrides: dict[str, Any] | None = None,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> TriggerResponse:
        call = trigger_call(job_id, overrides, reason, idempotency_key)
        return await self._send(call)  # type: ignore[no-any-return]

    async def pause_job(self, job_id: str | UUID) -> Job:
        return await self._send(_Call("POST", _job_path(job_id, "pause"), Job))  # type: ignore[no-any-return]

    async def resume_job(self, job_id: str | UUID) -> Job:
        return await self._send(_Call("POST", _job_path(job_id, "resume"), Job))  # type: ignore[no-any-return]

    async def health(self) -> Health:
        return await self._send(health_call())  # type: ignore[no-any-return]

    async def list_runs(
        self,
        *,
        job_id: str | UUID | None = None,
        job_name: str | None = None,
        state: str | Iterable[str] | None = None,
        page: int = 1,
        page_size: int = 20,
    ) -> RunList:
        call = list_runs_call(job_id, job_name, state, page, page_size)
        return await self._send(call)  # type: ignore[no-any-return]

    async def get_run(self, run_id: str | UUID) -> RunStatus:
        path = f"{MONITORING}/training/jobs/{run_id}"
        return await self._send(_Call("GET", path, RunStatus))  # type: ignore[no-any-return]

    async def wait_for_run(
        self,
        run_id: str | UUID,
        timeout: float = 600.0,
        poll: float = 2.0,
        on_update: Callable[[RunStatus], None] | None = None,
    ) -> RunStatus:
        wait = _WaitState(timeout)
        while True:
            last = await self.get_run(run_id)
            if on_update:
                on_update(last)
            if last.is_final:
                return last
            if wait.expired():
                raise wait.error("a final state", last)
            await asyncio.sleep(poll)


__all__ = [
    "APIError",
    "AsyncLMCPClient",
    "AuthError",
    "ConflictError",
    "ForbiddenError",
    "LMCPClient",
    "NotFoundError",
    "ServerError",
    "ServiceUnavailableError",
    "ValidationError",
]
