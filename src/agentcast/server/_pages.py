"""The pages a browser asks for: the web chat (`GET /`), its icon, and offline API docs.

Everything is served from the installed package: the chat is one HTML file beside this module,
the icon is inline, and `/docs` (Swagger UI) loads its script and styles from the
`fastapi-offline` package instead of a CDN, so a server with no network still documents itself.
There is no `/redoc`: ReDoc fetches its logo from its own CDN even when served locally.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, Response
from fastapi_offline import FastAPIOffline

__all__ = ["docs_app", "pages_router"]

_STATIC = Path(__file__).parent / "static"
_ICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
    '<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1">'
    '<stop offset="0" stop-color="#2f5bd3"/><stop offset="1" stop-color="#6b4fbb"/>'
    "</linearGradient></defs>"
    '<rect width="32" height="32" rx="8" fill="url(#g)"/>'
    '<path d="M21.7 10.3a8 8 0 1 0 0 11.4" fill="none" stroke="#fff" stroke-width="3.2"'
    ' stroke-linecap="round"/></svg>'
)
_ONE_DAY = "public, max-age=86400"


def pages_router() -> APIRouter:
    """Return the routes of the web chat page and its icon (kept out of the OpenAPI schema)."""
    router = APIRouter(include_in_schema=False)

    @router.get("/", response_class=HTMLResponse)
    async def page() -> Response:
        index = _STATIC / "index.html"
        if not index.is_file():
            return HTMLResponse("<h1>agentcast</h1><p>The web chat is not built.</p>")
        # no-cache: an upgraded server's page is picked up at the next load.
        return HTMLResponse(
            index.read_text(encoding="utf-8"), headers={"Cache-Control": "no-cache"}
        )

    @router.get("/favicon.ico")
    async def favicon() -> Response:
        # Browsers ask for /favicon.ico whatever the page links; an SVG answers both.
        return Response(_ICON, media_type="image/svg+xml", headers={"Cache-Control": _ONE_DAY})

    return router


def docs_app(**kwargs: Any) -> FastAPI:
    """Return a FastAPI app whose `/docs` needs no network (its assets come from a package)."""
    return FastAPIOffline(redoc_url=None, favicon_url="/favicon.ico", **kwargs)
