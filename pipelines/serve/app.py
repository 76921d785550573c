"""``vidscope serve``: the HTTP API (FastAPI) and the web app, over one data folder.

Everything under ``/api/v1`` is described by the OpenAPI document at ``/openapi.json`` (the
contract; interactive at ``/docs``). Errors are JSON ``{"status": N, "message": "..."}``: a bad
parameter is 422, an id the index does not hold 404, and nothing else leaks (a failure inside is
logged and answered 500 without its traceback).

Access: on a loopback address anyone on the machine may ask. Bound to any other address the
server requires a token (``Authorization: Bearer TOKEN``, or the ``vidscope_token`` cookie the
web app sets, so that ``<video>`` and ``<img>`` requests carry it), compared in constant time;
``/healthz`` and ``/readyz`` stay open for orchestrators. CORS is off unless origins are given.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, HTTPException, Path as PathParam, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sse_starlette.sse import EventSourceResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from indexers.highlights import HIGHLIGHT_KINDS
from pipelines.ingest.analysis import DEFAULT_MIN_SCORE
from pipelines.serve import live
from pipelines.serve.library import API, Library, NotFound
from pipelines.serve.metrics import Metrics

log = logging.getLogger("vidscope.serve")
WEB = Path(__file__).parent / "web"
TOKEN_COOKIE = "vidscope_token"
SourceId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="a source's id, as results give it")]
TopK = Annotated[int, Query(ge=1, le=200, description="results at most")]
MAX_SECONDS = 10 * 365 * 24 * 3600  # ten years of stream: times past it are mistakes (and overflow nanoseconds)
Seconds = Annotated[float, Query(ge=0, le=MAX_SECONDS, description="seconds into the source")]


@dataclass(frozen=True, slots=True)
class ServeConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = field(default=None, repr=False)
    cors_origins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not is_loopback(self.host) and not self.token:
            raise ValueError(f"serving on {self.host} (not loopback) needs an access token: pass --token or set "
                             "VIDSCOPE_API_TOKEN")
        if self.token is not None and len(self.token) < 16:
            raise ValueError("the access token must be at least 16 characters")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_app(config: ServeConfig, *, library: Library | None = None) -> FastAPI:
    """The app; ``library`` is opened at start-up unless given (tests share one)."""
    state: dict = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state["library"] = library or await asyncio.to_thread(Library, config.data_dir)
        try:
            yield
        finally:
            if library is None:
                state["library"].close()

    app = FastAPI(title="vidscope", version="1", lifespan=lifespan,
                  description="Search and watch video by what is seen, heard and said.")
    metrics = Metrics(lambda: state.get("library"), config.data_dir)
    app.add_middleware(metrics.middleware)
    if config.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["GET"],
                           allow_headers=["Authorization", "Range"])
    _errors(app)

    def lib() -> Library:
        return state["library"]

    async def authorised(request: Request) -> None:  # async: no thread hop for a compare
        if config.token is None:
            return
        given = request.headers.get("authorization", "")
        token = given[7:] if given.lower().startswith("bearer ") else request.cookies.get(TOKEN_COOKIE, "")
        if not hmac.compare_digest(token.encode(), config.token.encode()):
            raise HTTPException(401, "this server needs an access token (Authorization: Bearer TOKEN)",
                                headers={"WWW-Authenticate": "Bearer"})

    guard = [Depends(authorised)]

    @app.get(f"{API}/search", dependencies=guard, summary="Moments that match a text, best first")
    def search(q: Annotated[str, Query(min_length=1, max_length=500, description="what to look for")],
               top_k: TopK = 10,
               source: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="only this source (id)")] = None,
               start: Annotated[float | None, Query(ge=0, le=MAX_SECONDS, description="only moments after this many seconds")] = None,
               end: Annotated[float | None, Query(ge=0, le=MAX_SECONDS, description="only moments before this many seconds")] = None) -> JSONResponse:
        if start is not None and end is not None and end <= start:
            raise ValueError("end must come after start")
        # Plain types already: a JSONResponse skips FastAPI's walk over the result (~ms a query).
        return JSONResponse({"query": q, "results": lib().search(q, top_k=top_k, source_id=source, start=start, end=end)})

    @app.get(f"{API}/highlights", dependencies=guard, summary="Highlight moments, best first")
    def highlights(source: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = None,
                   kind: Annotated[Literal[HIGHLIGHT_KINDS] | None, Query(description="what stood out")] = None,  # type: ignore[valid-type]
                   q: Annotated[str | None, Query(min_length=1, max_length=500, description="only those matching")] = None,
                   min_score: Annotated[float, Query(ge=0, le=1)] = DEFAULT_MIN_SCORE,
                   top_k: TopK = 20) -> JSONResponse:
        return JSONResponse({"results": lib().highlights(source_id=source, kind=kind, text=q, min_score=min_score,
                                                         top_k=top_k)})

    @app.get(f"{API}/sources", dependencies=guard, summary="Every source in the index, or the one a key names")
    def sources(key: Annotated[str | None, Query(min_length=1, max_length=4096,
                                                 description="a source's id, path or name (as the CLI takes it)")] = None) -> dict:
        return {"sources": lib().sources() if key is None else [lib().find(key)]}

    @app.get(f"{API}/sources/{{source_id}}", dependencies=guard, summary="A source: shots and timeline tracks")
    def source(source_id: SourceId) -> dict:
        return lib().source_detail(source_id)

    @app.get(f"{API}/sources/{{source_id}}/summary", dependencies=guard, summary="A source's summary and chapters")
    def summary(source_id: SourceId) -> dict:
        return lib().summary(source_id)

    @app.get(f"{API}/sources/{{source_id}}/ask", dependencies=guard, summary="Answer a question from a source's moments")
    def ask(source_id: SourceId, q: Annotated[str, Query(min_length=1, max_length=500)],
            top_k: Annotated[int, Query(ge=1, le=20)] = 3) -> dict:
        return lib().ask(source_id, q, top_k=top_k)

    @app.get(f"{API}/sources/{{source_id}}/clip.mp4", dependencies=guard, response_class=FileResponse,
             summary="A span of the source as MP4 (range requests work)")
    def clip(source_id: SourceId, start: Seconds, end: Seconds) -> FileResponse:
        if end <= start:
            raise ValueError("end must come after start")
        path = lib().clip(source_id, start, end)
        return FileResponse(path, media_type="video/mp4", filename=f"{source_id}-{start:g}-{end:g}.mp4",
                            content_disposition_type="inline")

    @app.get(f"{API}/sources/{{source_id}}/media", dependencies=guard, response_class=FileResponse,
             summary="The source's own file, when a browser plays it (range requests work)")
    def media(source_id: SourceId) -> FileResponse:
        path = lib().media(source_id)
        return FileResponse(path, media_type="video/mp4" if path.suffix.lower() in (".mp4", ".m4v", ".mov") else None,
                            content_disposition_type="inline", filename=path.name)

    @app.get(f"{API}/segments/{{segment_id}}/thumbnail.jpg", dependencies=guard, response_class=Response,
             summary="A segment's picture (JPEG)")
    def thumbnail(segment_id: Annotated[int, PathParam(ge=-(2**63), le=2**63 - 1)]) -> Response:
        return Response(lib().thumbnail(segment_id), media_type="image/jpeg",
                        headers={"Cache-Control": "private, max-age=86400"})

    @app.get(f"{API}/live", dependencies=guard, summary="Each live stream's state and lag")
    def live_streams() -> dict:
        return {"streams": live.statuses(config.data_dir)}

    @app.get(f"{API}/events", dependencies=guard, summary="Live highlights and chapters as Server-Sent Events")
    async def events(request: Request) -> EventSourceResponse:
        stop = asyncio.Event()
        store = lib().index.store
        feed = live.redis_events(store, stop) if hasattr(store, "pubsub") else live.file_events(config.data_dir, stop)

        async def stream():
            try:
                async for event in feed:
                    if await request.is_disconnected():
                        break
                    yield {"event": event.get("type", "event"), "data": json.dumps(event)}
            finally:
                stop.set()

        return EventSourceResponse(stream(), ping=15)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> JSONResponse:
        if "library" not in state:
            return JSONResponse({"status": 503, "message": "starting"}, 503)
        ok, message = lib().ready()
        return JSONResponse({"status": 200 if ok else 503, "message": message}, 200 if ok else 503)

    @app.get("/metrics", dependencies=guard, include_in_schema=False)
    def prometheus() -> Response:
        return metrics.response()

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(WEB / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=WEB), name="static")
    return app


def _errors(app: FastAPI) -> None:
    def body(status: int, message: str, **extra) -> JSONResponse:
        return JSONResponse({"status": status, "message": message, **extra}, status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        response = body(exc.status_code, str(exc.detail))
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(RequestValidationError)
    async def bad_parameters(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in exc.errors()]
        return body(422, "; ".join(problems), details=[{"where": list(map(str, e["loc"])), "problem": e["msg"]}
                                                       for e in exc.errors()])

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> JSONResponse:
        return body(404, str(exc))

    @app.exception_handler(ValueError)
    async def bad_value(request: Request, exc: ValueError) -> JSONResponse:
        return body(422, str(exc))

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return body(500, f"the server failed to answer ({type(exc).__name__}); its log says more")


def serve(config: ServeConfig) -> None:
    """Run until interrupted (uvicorn handles SIGINT/SIGTERM)."""
    import uvicorn

    started = time.perf_counter()
    app = create_app(config)
    log.info("serving %s on http://%s:%d (set-up %.1f s)", config.data_dir, config.host, config.port,
             time.perf_counter() - started)
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning", access_log=False)
