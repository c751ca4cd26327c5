"""The HTTP server: an OpenAI-compatible API, the web page, health and metrics (FastAPI).

``create_app(model, tokenizer, settings)`` returns an ASGI app; ``serve.py`` runs it on
uvicorn. Routes:

- ``POST /v1/chat/completions`` and ``POST /v1/completions`` (``completions.py``),
  streamed as server-sent events or answered whole; ``GET /v1/models``;
- ``POST /tokenize``, ``POST /detokenize``, ``GET /tokenizer_info``: the tokenizer
  endpoints lm-evaluation-harness's ``local-completions`` uses (vLLM's shapes);
- ``GET /health`` and ``GET /metrics`` (Prometheus); ``GET /`` the chat page.

Every generation goes through one ``Scheduler`` (continuous batching over Phase 6's
engine). The HTTP side is asyncio; tokens come back from the scheduler thread through
an ``asyncio.Queue`` per request. A client that disconnects cancels its job; a full
queue answers 429 with ``Retry-After``; a request past ``request_timeout`` ends with a
timeout error. Request bodies are parsed by hand (``protocol.parse``), not by FastAPI's
dependency injection, so that every malformed body gets OpenAI's error shape and a 4xx.

Safety: the ``Guard`` middleware checks the ``Authorization: Bearer`` key when one is
set and, on a loopback-only server, the ``Host`` header (a web page on another site
cannot reach it by DNS rebinding); ``serve.py`` refuses a non-loopback ``--host``
without ``--api-key``.

What it leaves out: TLS (put a reverse proxy in front), several models per server,
embeddings, the Responses and Assistants APIs.

Run: ``python -m phases.phase9_serving.serve --help``.
"""
from __future__ import annotations

import asyncio
import hmac
import time
from dataclasses import dataclass, field
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles

from phases.phase6_inference.engine import Engine
from phases.phase9_serving import protocol as P
from phases.phase9_serving.metrics import CONTENT_TYPE, Metrics, access_log
from phases.phase9_serving.scheduler import Scheduler

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


@dataclass
class Settings:
    """How the server behaves; ``serve.py`` fills it from the command line."""
    model_name: str = "mini-nanochat"
    limits: P.Limits = field(default_factory=P.Limits)
    temperature: float = 0.8           # defaults for requests that do not say (nanochat's web server)
    top_k: int | None = 50
    top_p: float | None = None
    default_max_tokens: int = 512
    context: int | None = None         # tokens per batch row (default: the model's sequence_len)
    max_batch: int = 16
    max_queue: int = 64
    request_timeout: float = 300.0
    prefix_reuse: bool = True
    api_key: str | None = None
    loopback_only: bool = True         # check the Host header (no DNS rebinding)
    web_ui: bool = True
    scheduler_class: type = Scheduler  # a learner's own (the checkpoint's --impl scheduler=PATH)


class Guard:
    """ASGI middleware: API key, Host check, one access-log line and request metrics per request."""

    OPEN = ("/health", "/", "/favicon.ico")

    def __init__(self, app, settings: Settings, metrics: Metrics):
        self.app, self.settings, self.metrics = app, settings, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [500]
        scope.setdefault("state", {})
        path = scope.get("path", "")

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            refusal = self._refuse(scope)
            if refusal is not None:
                await error_response(refusal)(scope, receive, send_status)
            else:
                await self.app(scope, receive, send_status)
        finally:
            seconds = time.perf_counter() - start
            endpoint = path if path in KNOWN_PATHS or path.startswith("/static/") else "other"
            endpoint = "/static" if endpoint.startswith("/static/") else endpoint
            self.metrics.requests.labels(endpoint, str(status[0])).inc()
            self.metrics.latency.labels(endpoint).observe(seconds)
            client = scope.get("client") or ("?", 0)
            access_log(method=scope.get("method"), path=path, status=status[0], ms=round(seconds * 1000, 1),
                       client=f"{client[0]}:{client[1]}", **scope["state"].get("log", {}))

    def _refuse(self, scope) -> P.APIError | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.settings.loopback_only:
            host = headers.get("host", "")
            name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
            if name not in LOOPBACK_HOSTS:
                return P.APIError(400, f"this server only answers requests addressed to localhost, not {host!r} "
                                       "(start it with --host and --api-key to serve other names)", code="bad_host")
        key = self.settings.api_key
        if key and scope.get("path") not in self.OPEN and not scope.get("path", "").startswith("/static/"):
            given = headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {key}".encode()):
                return P.APIError(401, "a valid API key is required: send 'Authorization: Bearer <key>'",
                                  code="invalid_api_key")
        return None


KNOWN_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics", "/",
               "/tokenize", "/detokenize", "/tokenizer_info")


def error_response(e: P.APIError) -> JSONResponse:
    return JSONResponse(e.body(), status_code=e.status, headers=e.headers)


class Server:
    """What the routes share: the engine, the scheduler, the settings, the metrics."""

    def __init__(self, model, tokenizer, settings: Settings):
        self.model, self.tokenizer, self.settings = model, tokenizer, settings
        self.metrics = Metrics()
        context = settings.context or model.config.sequence_len
        self.engine = Engine(model, tokenizer, max_context=context)
        self.scheduler = settings.scheduler_class(self.engine, settings.max_batch, settings.max_queue, context,
                                   metrics=self.metrics, prefix_reuse=settings.prefix_reuse)
        self.context = self.scheduler.max_len
        self.created = int(time.time())
        self.started = time.time()

    def check_model(self, name: str | None) -> None:
        if name is not None and name != self.settings.model_name:
            raise P.APIError(404, f"the model {name!r} does not exist; this server serves "
                                  f"{self.settings.model_name!r} (GET /v1/models)", param="model",
                             code="model_not_found")

    def budget(self, prompt_len: int, asked: int | None) -> int:
        """max_tokens for a prompt: what was asked, or the default, within the context window."""
        room = self.context - prompt_len
        if room < 1 or (asked is not None and asked > room):
            want = asked if asked is not None else 1
            raise P.APIError(400, f"this model's context window is {self.context} tokens; the prompt has "
                                  f"{prompt_len} and {want} more were asked for", param="messages",
                             code="context_length_exceeded")
        return asked if asked is not None else min(self.settings.default_max_tokens, room)

    def retry_after(self) -> P.APIError:
        self.metrics.rejected.labels("queue_full").inc()
        return P.APIError(429, f"the server is busy ({self.scheduler.waiting} requests waiting); retry shortly",
                          type="requests", code="rate_limit_exceeded", headers={"Retry-After": "1"})


def create_app(model, tokenizer, settings: Settings | None = None) -> FastAPI:
    """The ASGI app serving ``model``; its scheduler starts and stops with the app."""
    from phases.phase9_serving.chat_api import chat_completions
    from phases.phase9_serving.completions import completions

    settings = settings or Settings()
    server = Server(model, tokenizer, settings)

    async def lifespan(app):
        server.scheduler.start()
        yield
        server.scheduler.stop()

    # no /docs or /redoc: their pages load scripts from a CDN, and this server makes no external requests
    app = FastAPI(title="mini-nanochat", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.server = server

    @app.exception_handler(P.APIError)
    async def _api_error(request: Request, e: P.APIError):
        return error_response(e)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException):
        kind = {404: "unknown route", 405: "method not allowed"}.get(e.status_code, "error")
        return error_response(P.APIError(e.status_code, f"{kind}: {request.method} {request.url.path}",
                                         code=kind.replace(" ", "_")))

    @app.post("/v1/chat/completions")
    async def _chat(request: Request):
        return await chat_completions(server, request)

    @app.post("/v1/completions")
    async def _completions(request: Request):
        return await completions(server, request)

    @app.get("/v1/models")
    async def _models():
        return P.models_response([settings.model_name], server.created)

    @app.get("/health")
    async def _health():
        s = server.scheduler
        return {"status": "ok", "model": settings.model_name, "running": s.running, "waiting": s.waiting,
                "max_batch": s.max_batch, "context": server.context, "uptime_s": round(time.time() - server.started)}

    @app.get("/metrics")
    async def _metrics():
        return Response(server.metrics.exposition(), media_type=CONTENT_TYPE)

    add_tokenizer_routes(app, server)
    if settings.web_ui:
        static = resources.files("phases.phase9_serving") / "static"
        app.mount("/static", StaticFiles(directory=str(static)), name="static")

        @app.get("/")
        async def _page():
            return Response((static / "chat.html").read_bytes(), media_type="text/html; charset=utf-8",
                            headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache"})
    return Guard(app, settings, server.metrics)


# The page may load only its own files and talk only to this server: no CDN, no inline script.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


def add_tokenizer_routes(app: FastAPI, server: Server) -> None:
    """vLLM's tokenizer endpoints, which lm-evaluation-harness's ``tokenizer_backend=remote`` calls."""
    from phases.phase9_serving.completions import encode_with_specials

    tok = server.tokenizer

    @app.get("/tokenizer_info")
    async def _info():
        return {"tokenizer_class": "mini-nanochat-bpe", "vocab_size": tok.vocab_size, "bos_token": "<|bos|>",
                "eos_token": "<|bos|>", "pad_token": None, "model_max_length": server.context}

    @app.post("/tokenize")
    async def _tokenize(request: Request):
        body = _json_object(await request.body())
        text = body.get("prompt")
        if not isinstance(text, str):
            raise P.APIError(400, "prompt: a string is required", param="prompt")
        ids = encode_with_specials(tok, text)
        return {"tokens": ids, "count": len(ids), "max_model_len": server.context}

    @app.post("/detokenize")
    async def _detokenize(request: Request):
        body = _json_object(await request.body())
        ids = body.get("tokens")
        if not isinstance(ids, list) or not all(type(i) is int and 0 <= i < tok.vocab_size for i in ids):
            raise P.APIError(400, f"tokens: a list of token ids in [0, {tok.vocab_size}) is required",
                             param="tokens")
        return {"prompt": tok.decode(ids)}


def _json_object(raw: bytes) -> dict:
    import json
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise P.APIError(400, f"the request body is not valid JSON: {e}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise P.APIError(400, "the request body must be a JSON object")
    return body

