"""The app factory: `uvicorn api.app:create_app --factory --port 8000`.

One router per seed section under /api/v1; OpenAPI at /docs. The Prefect client is
opened once per app (lifespan) and shared by all requests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from api.deps import make_prefect_client
from api.errors import register_exception_handlers
from api.routers import automation, monitoring
from flows.settings import Settings, get_settings

API_PREFIX = "/api/v1"

# (router, prefix) per seed section. The debugging and models sections (other issues)
# add their routers here.
ROUTERS: list[tuple[APIRouter, str]] = [
    (automation.router, f"{API_PREFIX}/automation"),
    (monitoring.router, f"{API_PREFIX}/monitoring"),
]

DESCRIPTION = """
Scheduled, observable LM training on Prefect. A **job** is a Prefect deployment of the
training flow (its id is the deployment id); a **run** is a flow run with seven stage
task runs. Schedules: `cron:0 2 * * *`, `interval:hours=6`, `interval:hours=1,minutes=30`.

Every error has the body `{"error": {"code", "message", "fields": [{"field", "message"}]}}`.
"""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with make_prefect_client(app.state.settings) as client:
        app.state.prefect_client = client
        try:
            yield
        finally:
            app.state.prefect_client = None


def create_app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI(
        title="LM Training Control Panel",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        openapi_tags=[
            {"name": "automation", "description": "Jobs: create, list, trigger, pause."},
            {"name": "monitoring", "description": "Health and training-run status."},
        ],
    )
    app.state.settings = settings or get_settings()
    app.state.prefect_client = None
    register_exception_handlers(app)
    for router, prefix in ROUTERS:
        app.include_router(router, prefix=prefix)
    return app
