"""The aiohttp application: routes plus the cross-cutting HTTP rules of the binding.

Every request passes one middleware that checks auth, version and content
type and turns failures (a route's, or aiohttp's own 404, 405 or 413) into the
`{"error": {...}}` envelope. Every response it answers with, including an event
stream a route starts itself, gets `Content-Type: application/openjobspec+json`
(event streams keep `text/event-stream`; see `response_media_type` for clients
that need `application/json`), `OJS-Version: 1.0`, `X-Request-Id` and the CORS
headers as it is prepared.
"""

from __future__ import annotations

import functools
import hmac
import logging
import os
import random
import re
import time
from collections.abc import Awaitable, Callable, Collection, Sequence

import grpc
from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.admin.client import AdminClient
from gateway.admin.dashboard import DASHBOARD_PATH, Dashboard
from gateway.admin.routes import AdminRoutes
from gateway.client import OJSClient
from gateway.errors import (
    ApiError,
    backend_error,
    from_http_status,
    from_rpc_error,
    invalid_request,
    not_found,
    payload_too_large,
    unauthenticated,
    unsupported,
)
from gateway.routes import EVENT_STREAM, MEDIA_TYPE, REQUEST_ID, Routes, json_response

__all__ = ["JSON_MEDIA_TYPE", "RESPONSE_MEDIA_TYPES", "create_app", "is_supported_version", "new_request_id"]

logger = logging.getLogger(__name__)

OJS_VERSION = "1.0"
JSON_MEDIA_TYPE = "application/json"
# Any 1.x version is served by this 1.0 implementation (minor versions only add, HTTP binding §3.3),
# pre-releases and build metadata included: "1", "1.0", "1.2.3", "1.0.0-rc.1".
_VERSION_PATTERN = re.compile(r"^v?(\d+)(?:\.\d+){0,2}(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
_SUPPORTED_MAJOR = 1
_ACCEPTED_MEDIA_TYPES = frozenset({JSON_MEDIA_TYPE, MEDIA_TYPE})
RESPONSE_MEDIA_TYPES = (MEDIA_TYPE, JSON_MEDIA_TYPE)
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Open without credentials so load balancers can probe and clients can discover the server.
_PUBLIC = frozenset(
    {("/ojs/v1/health", "GET"), ("/ojs/v1/health", "HEAD"), ("/ojs/manifest", "GET"), ("/ojs/manifest", "HEAD")}
)
_MAX_REQUEST_ID_LENGTH = 200

# PUT: the progress extension reports with PUT /ojs/v1/jobs/{id}/progress.
_CORS_ALLOW_METHODS = "GET, POST, PUT, DELETE, OPTIONS"
_CORS_ALLOW_HEADERS = "Content-Type, Accept, Authorization, X-Request-Id, OJS-Version"
_CORS_EXPOSE_HEADERS = (
    "X-Request-Id, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, OJS-Version, Retry-After"
)
_CORS_MAX_AGE = "86400"

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_PrepareHook = Callable[[web.Request, web.StreamResponse], Awaitable[None]]


# Request ids need to be unique, not secret: a per-process PRNG (reseeded in a forked child so two
# processes never share a sequence) instead of two system calls per request.
_random = random.Random()
os.register_at_fork(after_in_child=_random.seed)


def new_request_id() -> str:
    """`req_<UUIDv7>`: time-ordered, so ids sort like the log lines they tag."""
    ms = time.time_ns() // 1_000_000
    rand = _random.getrandbits(74)
    value = (ms & (2**48 - 1)) << 80 | 0x7 << 76 | (rand >> 62 & 0xFFF) << 64 | 0b10 << 62 | (rand & (2**62 - 1))
    text = f"{value:032x}"
    return f"req_{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _request_id(request: web.Request) -> str:
    given = request.headers.get("X-Request-Id", "").strip()
    if 0 < len(given) <= _MAX_REQUEST_ID_LENGTH and given.isascii() and given.isprintable():
        return given
    return new_request_id()


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


@functools.lru_cache(maxsize=256)
def _accepted(accept: str) -> frozenset[str]:
    """Media types an Accept header names with a non-zero quality (wildcards as written)."""
    named = set()
    for item in accept.split(","):
        media_type, *params = item.split(";")
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            named.add(media_type.strip().lower())
    # Clients send the same few Accept headers over and over: parsed once each (the cache is bounded).
    return frozenset(named)


def is_supported_version(version: str) -> bool:
    match = _VERSION_PATTERN.match(version.strip())
    return match is not None and int(match.group(1)) == _SUPPORTED_MAJOR


class _Policy:
    """The per-application settings the middleware enforces."""

    def __init__(
        self,
        api_key: str | None,
        max_body_bytes: int,
        cors_origins: Collection[str],
        response_media_type: str,
        open_paths: Collection[str] = (),
    ) -> None:
        if response_media_type not in RESPONSE_MEDIA_TYPES:
            raise ValueError(f"response media type must be one of {', '.join(RESPONSE_MEDIA_TYPES)}")
        self.api_key = api_key.encode() if api_key else None
        # Operational routes (probes, metrics): open, and answering in their own content type.
        self.open_paths = frozenset(open_paths)
        self.max_body_bytes = max_body_bytes
        self.cors_origins = frozenset(cors_origins)
        self.response_media_type = response_media_type

    def media_type_for(self, request: web.Request) -> str:
        """The configured type, or application/json for a request that asks for it and not for the OJS type."""
        if self.response_media_type == JSON_MEDIA_TYPE:
            return JSON_MEDIA_TYPE
        accept = request.headers.get("Accept")
        if accept:
            named = _accepted(accept)
            if JSON_MEDIA_TYPE in named and MEDIA_TYPE not in named:
                return JSON_MEDIA_TYPE
        return MEDIA_TYPE

    def check_auth(self, request: web.Request) -> None:
        if self.api_key is None or (request.path, request.method) in _PUBLIC or request.path in self.open_paths:
            return
        # The dashboard's files hold no data; the page asks for the key and sends it with its API calls.
        if request.method in ("GET", "HEAD") and request.path.startswith(DASHBOARD_PATH):
            return
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self.api_key):
            raise unauthenticated()

    @staticmethod
    def check_version(request: web.Request) -> None:
        version = request.headers.get("OJS-Version")
        # Discovery must work whatever a client asks for: the manifest is how it learns what is served.
        if version is None or (request.path, request.method) in _PUBLIC or is_supported_version(version):
            return
        raise unsupported(
            f"OJS-Version '{version.strip()}' is not supported; this server implements {OJS_VERSION} (any 1.x)",
            supported_versions=[OJS_VERSION],
        )

    @staticmethod
    def check_content_type(request: web.Request) -> None:
        if request.method not in _BODY_METHODS or not request.body_exists:
            return
        content_type = request.headers.get("Content-Type")
        if content_type is not None and _media_type(content_type) not in _ACCEPTED_MEDIA_TYPES:
            raise invalid_request(
                f"unsupported Content-Type '{_media_type(content_type)}'; send {MEDIA_TYPE} or application/json",
                field="Content-Type",
            )

    def allowed_origin(self, request: web.Request) -> str | None:
        origin = request.headers.get("Origin")
        if origin is None:
            return None
        if origin in self.cors_origins:
            return origin
        # A wildcard is acceptable only while nothing requires credentials (HTTP binding §20.3).
        if self.api_key is None and not self.cors_origins:
            return "*"
        return None

    def preflight(self, request: web.Request) -> web.Response:
        response = web.Response(status=204)
        response.headers["Access-Control-Allow-Methods"] = _CORS_ALLOW_METHODS
        response.headers["Access-Control-Allow-Headers"] = _CORS_ALLOW_HEADERS
        response.headers["Access-Control-Max-Age"] = _CORS_MAX_AGE
        response.headers["Allow"] = _CORS_ALLOW_METHODS
        return response

    def from_http_exception(self, exc: web.HTTPException, request: web.Request) -> ApiError:
        if isinstance(exc, web.HTTPNotFound):
            return not_found(
                f"no route for {request.method} {request.path}",
                hint="See the endpoint list of the OJS HTTP binding; every path starts with /ojs/v1.",
            )
        if isinstance(exc, web.HTTPMethodNotAllowed):
            allowed = sorted(exc.allowed_methods)
            return ApiError(
                405,
                "invalid_request",
                f"method {request.method} is not allowed on {request.path}",
                details={"allowed_methods": allowed},
                headers={"Allow": ", ".join(allowed)},
            )
        if isinstance(exc, web.HTTPRequestEntityTooLarge):
            return payload_too_large(self.max_body_bytes)
        return from_http_status(exc.status, exc.reason.lower() if exc.reason else None)


def _finish(
    response: web.StreamResponse, request_id: str, origin: str | None, media_type: str, *, keep_type: bool = False
) -> None:
    headers = response.headers
    if not keep_type and headers.get("Content-Type") != EVENT_STREAM:
        headers["Content-Type"] = media_type
    headers["OJS-Version"] = OJS_VERSION
    headers["X-Request-Id"] = request_id
    if origin is not None:
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Expose-Headers"] = _CORS_EXPOSE_HEADERS
        if origin != "*":
            headers.add("Vary", "Origin")


def _middleware(policy: _Policy) -> Middleware:
    @web.middleware
    async def ojs_http(request: web.Request, handler: _Handler) -> web.StreamResponse:
        request_id = _request_id(request)
        request[REQUEST_ID] = request_id
        response: web.StreamResponse
        try:
            if request.method == "OPTIONS":
                response = policy.preflight(request)
            else:
                policy.check_auth(request)
                policy.check_version(request)
                policy.check_content_type(request)
                response = await handler(request)
        except ApiError as exc:
            response = _error_response(exc, request_id)
        except grpc.RpcError as exc:
            response = _error_response(from_rpc_error(exc), request_id)
        except web.HTTPException as exc:
            response = _error_response(policy.from_http_exception(exc, request), request_id)
        except Exception:
            logger.exception("unhandled error in %s %s (request_id=%s)", request.method, request.path, request_id)
            response = _error_response(backend_error(), request_id)
        return response

    return ojs_http


def _on_prepare(policy: _Policy) -> _PrepareHook:
    async def ojs_headers(request: web.Request, response: web.StreamResponse) -> None:
        request_id = request.get(REQUEST_ID)
        if request_id is not None:
            # The dashboard's files keep their own types (HTML, JS, CSS), unless it is an error envelope;
            # operational routes (probes, metrics) keep theirs always.
            keep_type = request.path in policy.open_paths or (
                request.path.startswith(DASHBOARD_PATH) and response.status < 400
            )
            _finish(
                response,
                request_id,
                policy.allowed_origin(request),
                policy.media_type_for(request),
                keep_type=keep_type,
            )

    return ojs_headers


def _error_response(error: ApiError, request_id: str) -> web.Response:
    return json_response(error.body(request_id), status=error.status, headers=error.headers)


def create_app(
    client: OJSClient,
    *,
    admin: AdminClient | None = None,
    api_key: str | None = None,
    max_body_bytes: int = 4 * 1024 * 1024,
    cors_origins: Collection[str] = (),
    response_media_type: str = MEDIA_TYPE,
    outer_middlewares: Sequence[Middleware] = (),
    open_routes: Sequence[web.RouteDef] = (),
) -> web.Application:
    """The REST gateway over `client`.

    `admin`: the admin service; with it come the /ojs/v1/admin/ routes and the
    dashboard at /ojs/admin/. `api_key`: when set, every route but health, the
    manifest and the dashboard's static files requires
    `Authorization: Bearer <api_key>`. `cors_origins`: origins browsers may call
    from; with none configured and no API key any origin is allowed.
    `response_media_type`: Content-Type of JSON responses, the spec's
    `application/openjobspec+json` or `application/json` for clients that parse
    only that; with the former, a request whose Accept names application/json
    and not the OJS type is still answered with application/json.
    `outer_middlewares` run around the binding's own (they see every final status); `open_routes`
    are operational routes (probes, metrics) served without credentials in their own content type.
    """
    policy = _Policy(api_key, max_body_bytes, cors_origins, response_media_type, {route.path for route in open_routes})
    app = web.Application(client_max_size=max_body_bytes, middlewares=[*outer_middlewares, _middleware(policy)])
    app.router.add_routes(open_routes)
    # Headers go on when a response is prepared, so a stream a route prepares itself gets them too.
    app.on_response_prepare.append(_on_prepare(policy))
    routes = Routes(client)
    routes.add_to(app)
    if admin is not None:
        AdminRoutes(admin, client, routes.events).add_to(app)
        Dashboard().add_to(app)
    return app
