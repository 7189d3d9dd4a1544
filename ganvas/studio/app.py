"""The studio's ASGI app (Starlette): static page, JSON API, and the checks every request passes.

Safety, as for any server: the API wants the launch's random token in a header (the page reads it
from the URL fragment, which browsers never send); the Host header must name the address the studio
is bound to (no DNS rebinding); no CORS headers are sent; bodies over the cap get 413 before they are
read; images are checked in pixels before they are decoded. A request names runs by the catalog's keys,
never by a path. Errors come back as {"error": one sentence} and the server goes on serving.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ganvas.errors import GanvasError
from ganvas.studio.catalog import Catalog, Limits, UnknownRun
from ganvas.studio.uploads import png_data_url

log = logging.getLogger("ganvas")

STATIC = Path(__file__).parent / "static"
TOKEN_HEADER = "x-ganvas-token"
# On every response: no sniffing, no referrer (the page's address holds the token), no framing, and the page
# may load only its own scripts and styles and talk only to its own server.
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; "
        b"frame-ancestors 'none'; base-uri 'none'",
    ),
]
LOCAL_NAMES = ("127.0.0.1", "localhost", "[::1]")


@dataclass
class Settings:
    """How one studio was launched: its token, the host names it answers to, and its limits."""

    token: str
    hosts: tuple[str, ...]  # Host header values accepted ("127.0.0.1:8765", "localhost:8765", ...)
    max_body: int = 32 * 2**20
    limits: Limits = field(default_factory=Limits)


def host_names(host: str, port: int) -> tuple[str, ...]:
    """The Host header values of a studio bound to host:port (the local names too when bound locally)."""
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    names = {shown, *LOCAL_NAMES} if shown in LOCAL_NAMES else {shown}
    if host in ("0.0.0.0", "::"):  # every address of this machine
        name = socket.gethostname()
        with contextlib.suppress(OSError):
            names |= {name, *socket.gethostbyname_ex(name)[2], *LOCAL_NAMES}
    return tuple(sorted(f"{name}:{port}" for name in names) + (sorted(names) if port == 80 else []))


class Guard:
    """ASGI middleware: the Host check on every request, the token on /api/, and the body cap."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app, self.settings = app, settings

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "websocket":  # the studio has no websockets: refuse before any check could be skipped
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        problem = self._problem(scope, headers)
        if problem:
            status, sentence = problem
            await JSONResponse({"error": sentence}, status_code=status)(scope, receive, send_with_headers)
            return
        scope.setdefault("state", {})["max_body"] = self.settings.max_body
        await self.app(scope, receive, send_with_headers)

    def _problem(self, scope: dict, headers: dict[str, str]) -> tuple[int, str] | None:
        host = headers.get("host", "")
        if host not in self.settings.hosts:
            return 421, f"this studio answers to {self.settings.hosts[0]}, not to the host {host[:100]!r}"
        if scope["path"].startswith("/api/"):
            token = headers.get(TOKEN_HEADER, "")
            if not hmac.compare_digest(token.encode(), self.settings.token.encode()):
                return 403, "the studio's token is missing or wrong; open the address the studio printed, with #token"
            length = headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > self.settings.max_body):
                return 413, _too_large(self.settings.max_body)
        return None


class BodyTooLarge(GanvasError):
    """A body read past the cap (sent without a Content-Length, or with a wrong one)."""


def _too_large(cap: int) -> str:
    return f"the request is larger than this studio's limit of {cap / 2**20:.0f} MB; send a smaller image"


class Latest:
    """Per page (channel), the newest request number: an older render waiting for a model is dropped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._newest: dict[str, int] = {}

    def claim(self, channel: str, seq: int) -> None:
        with self._lock:
            if seq > self._newest.get(channel, -1):
                self._newest[channel] = seq
            if len(self._newest) > 1000:  # pages come and go; forget the oldest
                self._newest.pop(next(iter(self._newest)))

    def superseded(self, channel: str, seq: int) -> bool:
        with self._lock:
            return seq < self._newest.get(channel, -1)


def make_app(catalog: Catalog, settings: Settings) -> Any:
    """The studio's ASGI application, wrapped in its Guard."""
    latest = Latest()

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers=_page_headers())

    async def models(request: Request) -> Response:
        return _json({"models": catalog.listing()})

    async def describe(request: Request) -> Response:
        entry = catalog.entry(request.path_params["key"])
        return _json(await _locked(entry, entry.describe))

    async def objects(request: Request) -> Response:
        entry = catalog.entry(request.path_params["key"])
        return _json({"objects": await _locked(entry, entry.objects)})

    async def examples(request: Request) -> Response:
        entry = catalog.entry(request.path_params["key"])
        return _json({"examples": await _locked(entry, lambda: entry.examples(settings.limits))})

    async def render(request: Request) -> Response:
        body = await _body(request)
        entry = catalog.entry(body.get("model"))
        channel, seq = str(body.get("channel", ""))[:64], body.get("seq", 0)
        seq = seq if isinstance(seq, int) else 0
        latest.claim(channel, seq)

        def work() -> dict[str, Any]:
            if latest.superseded(channel, seq):
                return {"superseded": True, "seq": seq}
            started = time.perf_counter()
            image, notes = entry.render(body, settings.limits)
            ms = (time.perf_counter() - started) * 1000
            return {"image": png_data_url(image), "ms": round(ms, 1), "notes": notes, "seq": seq}

        return _json(await _locked(entry, work))

    async def styles(request: Request) -> Response:
        body = await _body(request)
        entry = catalog.entry(body.get("model"))
        return _json(await _locked(entry, lambda: entry.style_previews(body, settings.limits)))

    async def suggest(request: Request) -> Response:
        body = await _body(request)
        entry = catalog.entry(body.get("model"))
        return _json({"colors": await _locked(entry, lambda: entry.suggest(body, settings.limits))})

    async def labels(request: Request) -> Response:
        body = await _body(request)
        entry = catalog.entry(body.get("model"))
        return _json(await _locked(entry, lambda: entry.decode_labels(body, settings.limits)))

    api = [
        Route("/api/models", _guarded(models)),
        Route("/api/models/{key}", _guarded(describe)),
        Route("/api/models/{key}/objects", _guarded(objects)),
        Route("/api/models/{key}/examples", _guarded(examples)),
        Route("/api/render", _guarded(render), methods=["POST"]),
        Route("/api/styles", _guarded(styles), methods=["POST"]),
        Route("/api/suggest", _guarded(suggest), methods=["POST"]),
        Route("/api/labels", _guarded(labels), methods=["POST"]),
    ]

    async def no_icon(request: Request) -> Response:
        return Response(status_code=204)

    routes = [
        Route("/", index),
        Route("/favicon.ico", no_icon),
        *api,
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        what = (
            "no such page or API call" if status == 404 else f"{request.method} is not how to call {request.url.path}"
        )
        return _json({"error": f"{what} in the studio"}, status)

    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})
    return Guard(app, settings)


async def _locked(entry: Any, work: Callable[[], Any]) -> Any:
    """Run work in a worker thread with the run's lock held: one request at a time per model, off the event loop."""

    def run() -> Any:
        with entry.lock:
            return work()

    return await run_in_threadpool(run)


async def _body(request: Request) -> dict[str, Any]:
    """The request's JSON object, read no further than the studio's cap."""
    cap, size, chunks = request.scope["state"]["max_body"], 0, []
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise BodyTooLarge(_too_large(cap))
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadRequest("the request body is not JSON; send a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


class BadRequest(GanvasError):
    """A request the API cannot read."""


def _guarded(handler: Callable) -> Callable:
    """The handler, with errors turned into {"error": sentence} and a status code; the server keeps serving."""

    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except BodyTooLarge as err:
            return _json({"error": str(err)}, 413)
        except UnknownRun as err:
            return _json({"error": str(err)}, 404)
        except (GanvasError, ValueError) as err:
            return _json({"error": str(err)}, 400)
        except Exception as err:  # a bug or an exhausted machine: say so, keep serving
            log.exception("studio: %s failed", request.url.path)
            return _json({"error": f"the studio failed on this request ({type(err).__name__}: {err})"}, 500)

    return guarded


def _page_headers() -> dict[str, str]:
    return {"Cache-Control": "no-store"}


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers=_page_headers())
