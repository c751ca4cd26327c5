"""``mini-nanochat serve``: the OpenAI-compatible server and the web page, on uvicorn.

    mini-nanochat serve                          # the newest chat model, http://127.0.0.1:8000
    mini-nanochat serve --run cpu_demo --port 8080
    mini-nanochat serve --host 0.0.0.0 --api-key "$(openssl rand -hex 16)"   # reachable by others
    python -m phases.phase9_serving.serve --help  # the same command without the package's CLI

Then point any OpenAI client at ``http://127.0.0.1:8000/v1`` (``OPENAI_BASE_URL``), open
``http://127.0.0.1:8000/`` in a browser, or read ``/metrics``.

Safe by default: it listens on 127.0.0.1 only, and refuses any other ``--host`` unless
``--api-key`` (or ``MINI_NANOCHAT_API_KEY``) is set, because a model server on a
network interface is a free computer for whoever finds it. ``start_in_thread`` runs the
same app in a background thread on a free port: the tests and the benchmark use it.

What it leaves out: TLS, several worker processes (one process owns the model; batching,
not processes, is how it serves many clients), hot reload of the model.

Run: ``python -m phases.phase9_serving.serve --run cpu_demo``.
"""
from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import socket
import sys
import threading

from phases.common.console import UserError, positive_int, run_command


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", help="run name, run folder or checkpoint folder (default: the newest chat "
                                 "model, else the demo's base model)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--api-key", default=os.environ.get("MINI_NANOCHAT_API_KEY"),
                   help="require 'Authorization: Bearer KEY' (default $MINI_NANOCHAT_API_KEY); needed for "
                        "any host other than loopback")
    p.add_argument("--model-name", help="the model id in the API (default: the run's name)")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: cuda if available, else cpu)")
    g = p.add_argument_group("batching and limits")
    g.add_argument("--max-batch", type=int, default=16, help="rows decoded together (default 16)")
    g.add_argument("--no-batching", action="store_true", help="one request at a time (= --max-batch 1)")
    g.add_argument("--no-prefix-reuse", action="store_true", help="always prefill the whole prompt")
    g.add_argument("--max-queue", type=int, default=64, help="requests that may wait; more get 429 (default 64)")
    g.add_argument("--context", type=positive_int, default=None,
                   help="tokens per conversation (default: the model's sequence_len)")
    g.add_argument("--timeout", type=float, default=300.0, help="seconds per request, waiting included (300)")
    g = p.add_argument_group("defaults for requests that do not set them")
    g.add_argument("--temperature", type=float, default=0.8, help="(default 0.8)")
    g.add_argument("--top-k", type=int, default=50, help="(default 50; 0 = off)")
    g.add_argument("--top-p", type=float, default=None, help="(default: off)")
    g.add_argument("--max-tokens", type=int, default=512, help="reply length when not asked (default 512)")
    p.add_argument("--no-web-ui", action="store_true", help="serve the API only, no page at /")
    p.add_argument("--quiet", action="store_true", help="no access log lines on stderr")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def settings_from(args, model_name: str):
    from phases.phase9_serving.server import Settings
    for name, value, ok in (("--max-batch", args.max_batch, args.max_batch >= 1),
                            ("--max-queue", args.max_queue, args.max_queue >= 0),
                            ("--timeout", args.timeout, args.timeout > 0),
                            ("--max-tokens", args.max_tokens, args.max_tokens >= 1),
                            ("--port", args.port, 0 <= args.port <= 65535)):
        if not ok:
            raise UserError(f"{name} {value} is out of range")
    from phases.phase1_transformer.sampling import check_knobs
    try:
        check_knobs(args.temperature, args.top_k, args.top_p)      # the defaults of every request
    except ValueError as e:
        raise UserError(str(e)) from None
    if args.api_key and not args.api_key.strip():
        raise UserError("--api-key is blank: give a real key, or leave it out on 127.0.0.1")
    loopback = is_loopback(args.host)
    if not loopback and not args.api_key:
        raise UserError(f"refusing to listen on {args.host} without --api-key: anyone who can reach this "
                        "machine could use the model (keep the default 127.0.0.1, or set a key)")
    return Settings(model_name=args.model_name or model_name, temperature=args.temperature,
                    top_k=args.top_k or None, top_p=args.top_p, default_max_tokens=args.max_tokens,
                    context=args.context, max_batch=1 if args.no_batching else args.max_batch,
                    max_queue=args.max_queue, request_timeout=args.timeout,
                    prefix_reuse=not args.no_prefix_reuse, api_key=args.api_key, loopback_only=loopback,
                    web_ui=not args.no_web_ui)


def load(run: str | None, device: str | None):
    """(model, tokenizer, name, is_chat) for ``--run``."""
    import torch

    from phases.phase2_training.load import load_model
    from phases.phase9_serving.runs import resolve_run
    path, chat, name = resolve_run(run)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, tok, _ = load_model(path, device)
    return model, tok, name, chat


def run(args) -> None:
    try:
        import uvicorn
    except ImportError:
        raise UserError("serving needs FastAPI and uvicorn: pip install 'mini-nanochat[serve]'") from None
    from phases.phase9_serving.metrics import setup_access_log
    from phases.phase9_serving.server import create_app

    settings = settings_from(args, "")      # flags first: a refused --host costs no model load
    sock = _bind(args.host, args.port)
    model, tok, name, chat = load(args.run, args.device)
    settings.model_name = args.model_name or name
    try:
        app = create_app(model, tok, settings)
    except ValueError as e:                          # --context beyond the model's rotary table
        raise UserError(f"--context {args.context}: {e}") from None
    if not args.quiet:
        setup_access_log()
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"serving {settings.model_name} ({'chat' if chat else 'base model: it continues text, it does not chat'}) "
          f"on http://{shown}:{sock.getsockname()[1]}  (OpenAI API at /v1, web page at /, metrics at /metrics)",
          file=sys.stderr, flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])


def _bind(host: str, port: int) -> socket.socket:
    """Bind now, so a busy port is a clear error before the model loads into a server."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as e:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror} (try another --port)") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class Background:
    """A server running in a thread of this process (tests, benchmark): ``.url``, ``.stop()``."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        import uvicorn
        self.sock = _bind(host, port)
        self.url = f"http://{host}:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the server thread died while starting")
            threading.Event().wait(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


def start_in_thread(app, port: int = 0) -> Background:
    return Background(app, port=port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m phases.phase9_serving.serve", description=(
        "Serve a trained model: an OpenAI-compatible API (/v1/chat/completions, /v1/completions, /v1/models), "
        "a chat page at /, /health and Prometheus /metrics."))
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    return run_command(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
