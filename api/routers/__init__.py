"""api.routers package."""
