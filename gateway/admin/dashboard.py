"""The dashboard: a few static files shipped in the package, served at /ojs/admin/.

The page is plain HTML with hand-written JavaScript; it reads the admin API and
the event stream, so the server needs no templates and no build step.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

__all__ = ["DASHBOARD_PATH", "Dashboard"]

DASHBOARD_PATH = "/ojs/admin/"
_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "core.js": "text/javascript; charset=utf-8",
    "charts.js": "text/javascript; charset=utf-8",
    "views.js": "text/javascript; charset=utf-8",
}
# Everything the page loads comes from here; no inline script, no third party.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


class Dashboard:
    def __init__(self) -> None:
        root = resources.files("gateway.admin").joinpath("static")
        # Read once: the files are small and never change while the process runs.
        self._files = {name: root.joinpath(name).read_bytes() for name in _FILES}

    def add_to(self, app: web.Application) -> None:
        app.router.add_get(DASHBOARD_PATH.rstrip("/"), self.redirect)
        app.router.add_get(DASHBOARD_PATH, self.index)
        app.router.add_get(DASHBOARD_PATH + "{file}", self.asset)

    async def redirect(self, request: web.Request) -> web.Response:
        # Returned, not raised: the gateway's middleware turns raised HTTP errors into error envelopes.
        return web.Response(status=308, headers={"Location": DASHBOARD_PATH})

    async def index(self, request: web.Request) -> web.Response:
        return self._serve("index.html")

    async def asset(self, request: web.Request) -> web.Response:
        name = request.match_info["file"]
        if name not in _FILES:
            raise web.HTTPNotFound()
        return self._serve(name)

    def _serve(self, name: str) -> web.Response:
        response = web.Response(body=self._files[name])
        response.headers["Content-Type"] = _FILES[name]
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-cache"
        return response
