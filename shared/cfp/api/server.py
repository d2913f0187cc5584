"""Entry point uvicorn imports (also in reload workers): settings from `CFP_*`, then the app."""

from __future__ import annotations

from starlette.applications import Starlette

from cfp.api.app import create_app
from cfp.app import build
from cfp.settings import Settings


def app_from_env() -> Starlette:
    """Build the platform from the environment and return its ASGI app."""
    return create_app(build(Settings.load()))
