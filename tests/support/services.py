"""Service availability: CI sets LMCP_REQUIRE_SERVICES=1 so a missing service fails."""

from __future__ import annotations

import os


def require_service() -> bool:
    return os.environ.get("LMCP_REQUIRE_SERVICES") == "1"
