"""Phase 9 checkpoint: the server, through the official ``openai`` client and raw HTTP.

Every test talks to a real server on a free 127.0.0.1 port (``conftest.py``), serving a
tiny model that has memorised a few conversations, so greedy replies are known exactly.
"""
from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse

import pytest

from phases.phase9_serving import sse
from phases.phase9_serving.conftest import CONVERSATIONS, QUESTIONS, _text

pytestmark = pytest.mark.phase9
openai = pytest.importorskip("openai")

ANSWER = {q: _text(a) for q, a in CONVERSATIONS}
ANSWER["What is 48/2?"] = "Half of 48 is <<48/2=24>>24."          # the calculator call, in API notation


def client(srv, **kw):
    return openai.OpenAI(base_url=srv.url + "/v1", api_key=kw.pop("api_key", "unused"), max_retries=0, **kw)


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def request(srv, method: str, path: str, body=None, headers=None, timeout: float = 30):
    """(status, headers, body bytes) of one raw HTTP request."""
    u = urllib.parse.urlparse(srv.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
    r = conn.getresponse()
    out = (r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    conn.close()
    return out


# -- the openai client --------------------------------------------------------------------------
def test_openai_client_chat(live_server):
    c = client(live_server)
    assert [m.id for m in c.models.list().data] == ["sft_tiny"]
    for q in ("What is the capital of France?", "Say hello in Japanese.", "What is 48/2?"):
        r = c.chat.completions.create(model="sft_tiny", messages=user(q), temperature=0)
        assert r.object == "chat.completion"
        assert r.choices[0].message.content == ANSWER[q]
        assert r.choices[0].finish_reason == "stop"
        assert r.usage.prompt_tokens > 0 and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_openai_client_stream_with_usage(live_server):
    q = "Say hello in Japanese."
    chunks = list(client(live_server).chat.completions.create(
        model="sft_tiny", messages=user(q), temperature=0, stream=True, stream_options={"include_usage": True}))
    assert all(ch.object == "chat.completion.chunk" and ch.id == chunks[0].id for ch in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == ANSWER[q]
    reasons = [ch.choices[0].finish_reason for ch in chunks if ch.choices]
    assert reasons[-1] == "stop" and all(r is None for r in reasons[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


def test_n_choices_seed_and_stop(live_server):
    c = client(live_server)
    kw = dict(model="sft_tiny", messages=user("Tell me a short story."), temperature=1.0, n=3, max_tokens=12)
    a = c.chat.completions.create(seed=7, **kw)
    b = c.chat.completions.create(seed=7, **kw)
    assert [ch.index for ch in a.choices] == [0, 1, 2]
    assert [ch.message.content for ch in a.choices] == [ch.message.content for ch in b.choices]
    assert 3 <= a.usage.completion_tokens <= 3 * 12
    r = c.chat.completions.create(model="sft_tiny", messages=user("What is the capital of France?"),
                                  temperature=0, stop=["Paris", "never"])
    assert r.choices[0].message.content == "The capital of France is " and r.choices[0].finish_reason == "stop"
    r = c.chat.completions.create(model="sft_tiny", messages=user("Count to five."), temperature=0, max_tokens=3)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 3


def test_openai_client_completions(live_server):
    c = client(live_server)
    r = c.completions.create(model="sft_tiny", prompt=["Cats say", "One, two"], max_tokens=4, temperature=0, n=2)
    assert r.object == "text_completion" and len(r.choices) == 4
    assert r.choices[0].text == r.choices[1].text          # greedy: both samples of prompt 0 agree
    stream = c.completions.create(model="sft_tiny", prompt="Cats say", max_tokens=4, temperature=0, stream=True)
    assert "".join(ch.choices[0].text for ch in stream if ch.choices) == r.choices[0].text


def test_errors_reach_the_client_as_openai_errors(live_server):
    c = client(live_server)
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="sft_tiny", messages=user("hi"), temperature=5)
    assert e.value.status_code == 400 and e.value.body["param"] == "temperature"
    with pytest.raises(openai.NotFoundError) as e:
        c.chat.completions.create(model="gpt-4o", messages=user("hi"))
    assert e.value.body["code"] == "model_not_found"


# -- SSE framing ---------------------------------------------------------------------------------
def test_sse_framing_and_done(live_server):
    status, headers, body = request(live_server, "POST", "/v1/chat/completions", {
        "messages": user("Bonjour!"), "stream": True, "n": 2, "temperature": 0})
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    assert body.endswith(b"data: [DONE]\n\n") and body.count(b"[DONE]") == 1
    frames = body.split(b"\n\n")[:-1]
    assert all(f.startswith(b"data: ") and b"\n" not in f for f in frames)
    data = list(sse.events([body[i:i + 7] for i in range(0, len(body), 7)]))   # split anywhere, even in a character
    chunks = [json.loads(d) for d in data[:-1]]
    assert data[-1] == "[DONE]" and len({ch["id"] for ch in chunks}) == 1
    for index in (0, 1):
        mine = [ch["choices"][0] for ch in chunks if ch["choices"][0]["index"] == index]
        assert "".join(m["delta"].get("content", "") for m in mine) == ANSWER["Bonjour!"]
        assert [m["finish_reason"] for m in mine][-1] == "stop"


# -- fifty clients at once -----------------------------------------------------------------------
def _stream_text(srv, question: str) -> str:
    status, _, body = request(srv, "POST", "/v1/chat/completions", {
        "messages": user(question), "stream": True, "temperature": 0, "max_tokens": 40}, timeout=120)
    assert status == 200, body
    return "".join(json.loads(d)["choices"][0]["delta"].get("content", "")
                   for d in sse.events([body]) if d != "[DONE]" and json.loads(d)["choices"])


def test_fifty_concurrent_streams_equal_alone(start_server):
    srv = start_server(max_batch=16, max_queue=64)
    alone = {q: _stream_text(srv, q) for q in QUESTIONS}
    assert alone["What is 48/2?"] == ANSWER["What is 48/2?"]
    results: dict[int, str] = {}
    errors: list = []

    def one(i):
        try:
            results[i] = _stream_text(srv, QUESTIONS[i % len(QUESTIONS)])
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert not errors and len(results) == 50
    assert all(results[i] == alone[QUESTIONS[i % len(QUESTIONS)]] for i in range(50))
    metrics = request(srv, "GET", "/metrics")[2].decode()
    batched = [line for line in metrics.splitlines() if line.startswith("mini_nanochat_batch_size_bucket")
               and 'le="4.0"' in line]
    steps = [line for line in metrics.splitlines() if line.startswith("mini_nanochat_batch_size_count")]
    assert float(batched[0].split()[-1]) < float(steps[0].split()[-1])      # some steps ran more than 4 rows
