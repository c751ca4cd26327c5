"""Operations: Prometheus metrics and structured access logs.

A server you cannot see into is a server you cannot run. Two windows:

- ``GET /metrics`` answers in Prometheus' text format (what Prometheus, Grafana Agent or a
  plain ``curl`` read): counters of requests and tokens, gauges of the queue and the
  running batch, and histograms of time to first token (TTFT), time per output token
  (TPOT) and whole-request latency. The names follow Prometheus' conventions (a unit
  suffix, ``_total`` on counters) and are prefixed ``mini_nanochat_``. Each ``Metrics``
  has its own registry, so several servers (tests) in one process never share counts.
- **access logs**: one JSON object per request on the ``mini_nanochat.access`` logger
  (stderr by default): time, method, path, status, duration, client, request id and,
  for generations, token counts, TTFT and finish reasons. One line per request, one
  object per line: ``jq`` and log shippers read it without a parser of their own.

What it leaves out: tracing (OpenTelemetry spans), per-user accounting.

Run nothing here directly; ``server.py`` and ``scheduler.py`` report into it.
"""
from __future__ import annotations

import json
import logging
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

ACCESS_LOG = logging.getLogger("mini_nanochat.access")
CONTENT_TYPE = CONTENT_TYPE_LATEST

# Seconds; a CPU demo model answers in milliseconds, a big model on a busy GPU in seconds.
_TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_TPOT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)
_LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


# --8<-- [start:metrics]
class Metrics:
    """Every number the server exports; one registry per server."""

    def __init__(self):
        r = self.registry = CollectorRegistry()
        p = "mini_nanochat_"
        self.requests = Counter(p + "requests", "HTTP requests answered", ["endpoint", "status"], registry=r)
        self.rejected = Counter(p + "rejected", "Generation requests refused before running", ["reason"],
                                registry=r)
        self.prompt_tokens = Counter(p + "prompt_tokens", "Prompt tokens of admitted requests", registry=r)
        self.reused_tokens = Counter(p + "prefix_reused_tokens",
                                     "Prompt tokens copied from the KV cache instead of prefilled", registry=r)
        self.generation_tokens = Counter(p + "generation_tokens", "Tokens generated", registry=r)
        self.queue_depth = Gauge(p + "queue_depth", "Requests waiting for a batch row", registry=r)
        self.running = Gauge(p + "running_requests", "Requests holding batch rows", registry=r)
        self.batch_size = Histogram(p + "batch_size", "Rows in each decode step", registry=r,
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128))
        self.ttft = Histogram(p + "time_to_first_token_seconds", "From arrival to the first token",
                              registry=r, buckets=_TTFT_BUCKETS)
        self.tpot = Histogram(p + "time_per_output_token_seconds", "Between consecutive tokens of a choice",
                              registry=r, buckets=_TPOT_BUCKETS)
        self.latency = Histogram(p + "request_duration_seconds", "From arrival to the last byte",
                                 ["endpoint"], registry=r, buckets=_LATENCY_BUCKETS)
# --8<-- [end:metrics]

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)


def access_log(**fields) -> None:
    """One JSON line on the access logger (fields with None values are left out)."""
    record = {"ts": round(time.time(), 3), **{k: v for k, v in fields.items() if v is not None}}
    ACCESS_LOG.info(json.dumps(record, ensure_ascii=False, separators=(",", ":")))


def setup_access_log(level: int = logging.INFO) -> None:
    """Send access lines to stderr as they are (no prefix: each line is JSON already)."""
    if ACCESS_LOG.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    ACCESS_LOG.addHandler(handler)
    ACCESS_LOG.setLevel(level)
    ACCESS_LOG.propagate = False
