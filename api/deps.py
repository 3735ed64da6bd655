"""Dependencies as `Annotated` aliases; tests override the functions via
`app.dependency_overrides[get_prefect_client] = ...`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from prefect.client.orchestration import PrefectClient

from flows.settings import Settings

DEFAULT_PREFECT_API_URL = "http://127.0.0.1:4200/api"


def prefect_api_url(settings: Settings) -> str:
    """PREFECT_API_URL (via Settings, then Prefect's own settings/profile), else the
    local server's default address. The facade never starts a temporary server."""
    if settings.prefect_api_url:
        return settings.prefect_api_url
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or DEFAULT_PREFECT_API_URL


def make_prefect_client(settings: Settings) -> PrefectClient:
    """A client for the configured server; credentials come from Prefect's settings
    (PREFECT_API_KEY / PREFECT_API_AUTH_STRING) and are never logged."""
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_KEY

    return PrefectClient(
        prefect_api_url(settings),
        api_key=PREFECT_API_KEY.value(),
        auth_string=PREFECT_API_AUTH_STRING.value(),
    )


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_prefect_client(request: Request) -> AsyncIterator[PrefectClient]:
    """The app's shared client (opened by the lifespan); a short-lived one otherwise."""
    shared: PrefectClient | None = getattr(request.app.state, "prefect_client", None)
    if shared is not None:
        yield shared
        return
    async with make_prefect_client(request.app.state.settings) as client:
        yield client


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
PrefectClientDep = Annotated[PrefectClient, Depends(get_prefect_client)]
