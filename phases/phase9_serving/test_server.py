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


# -- malformed requests ----------------------------------------------------------------------------
def _malformed():
    """A strategy of request bodies that a correct server must refuse with a 4xx."""
    from hypothesis import strategies as st
    junk = st.one_of(st.text(max_size=8), st.booleans(), st.lists(st.integers(), max_size=3),
                     st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), st.floats(allow_nan=False))
    not_number = st.one_of(st.text(max_size=5), st.booleans(), st.lists(st.integers(), max_size=2))
    bad_fields = {
        "temperature": st.one_of(not_number, st.floats(min_value=2.0001, max_value=1e9), st.floats(max_value=-1e-6)),
        "top_p": st.one_of(not_number, st.just(0), st.floats(min_value=1.0001, max_value=1e6), st.floats(max_value=0)),
        "top_k": st.one_of(not_number, st.integers(max_value=-1), st.floats(min_value=0.5, max_value=9.5)),
        "max_tokens": st.one_of(not_number, st.integers(max_value=-1), st.integers(min_value=5000)),
        "n": st.one_of(not_number, st.integers(max_value=0), st.integers(min_value=9, max_value=10 ** 6)),
        "stop": st.one_of(st.integers(), st.just(""), st.lists(st.text(min_size=1), min_size=5, max_size=7),
                          st.lists(st.integers(), min_size=1, max_size=2)),
        "seed": st.one_of(st.text(max_size=3), st.floats(min_value=0.5, max_value=9.5), st.integers(min_value=2 ** 63)),
        "stream": st.one_of(st.text(max_size=3), st.integers(), st.none()),
        "messages": st.one_of(st.just([]), junk.filter(lambda v: not isinstance(v, list) or v == []),
                              st.lists(junk, min_size=1, max_size=2),
                              st.builds(lambda r: [{"role": r, "content": "hi"}],
                                        st.text(max_size=6).filter(lambda r: r not in ("user", "system", "developer"))),
                              st.builds(lambda c: [{"role": "user", "content": c}],
                                        st.one_of(st.integers(), st.booleans(), st.just([{"type": "image"}]))),
                              st.just([{"role": "user", "content": "x" * 8001}]),
                              st.just([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])),
        "stream_options": st.just({"include_usage": True}),          # without stream: true
        "presence_penalty": st.floats(min_value=0.1, max_value=2),
        "model": st.one_of(st.integers(), st.text(min_size=1, max_size=8).filter(lambda m: m != "sft_tiny")),
    }
    valid = {"messages": user("hi"), "max_tokens": 1}
    mutated = st.sampled_from(sorted(bad_fields)).flatmap(
        lambda k: bad_fields[k].map(lambda v, k=k: json.dumps({**valid, k: v}).encode()))
    raw = st.one_of(st.binary(max_size=40).filter(lambda b: not b.strip().startswith(b"{")),
                    st.sampled_from([b"", b"[]", b"null", b"42", b'"hi"', b"{", b'{"messages": [}', b"\xff\xfe"]),
                    st.builds(lambda d: json.dumps(d).encode(), st.dictionaries(st.sampled_from(["foo", "prompt"]),
                                                                               junk, max_size=2)))
    return st.one_of(mutated, raw)


def test_thousand_malformed_requests_get_4xx_and_the_server_keeps_serving(live_server):
    from hypothesis import HealthCheck, given, settings

    u = urllib.parse.urlparse(live_server.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    seen: dict[int, int] = {}

    @settings(max_examples=1000, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(_malformed())
    def check(body):
        conn.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        payload = json.loads(r.read())
        seen[r.status] = seen.get(r.status, 0) + 1
        assert 400 <= r.status < 500, (body, r.status, payload)
        assert set(payload["error"]) == {"message", "type", "param", "code"} and payload["error"]["message"]

    check()
    conn.close()
    assert sum(seen.values()) >= 1000 and set(seen) <= {400, 404, 413}
    r = client(live_server).chat.completions.create(model="sft_tiny", messages=user("Who are you?"), temperature=0)
    assert r.choices[0].message.content == ANSWER["Who are you?"]


def test_other_bad_requests(live_server):
    assert request(live_server, "POST", "/v1/chat/completions", b"{" * (2 << 20))[0] == 413
    status, _, body = request(live_server, "GET", "/v1/nothing")
    assert status == 404 and json.loads(body)["error"]["code"] == "unknown_route"
    assert request(live_server, "GET", "/v1/chat/completions")[0] == 405
    status, _, body = request(live_server, "POST", "/v1/chat/completions", {"messages": user("x" * 7000)})
    assert status == 400 and json.loads(body)["error"]["code"] == "context_length_exceeded"
    status, _, body = request(live_server, "POST", "/v1/completions", {"prompt": [[1, 2], [99999]]})
    assert status == 400 and json.loads(body)["error"]["param"] == "prompt"
    status, _, body = request(live_server, "POST", "/v1/completions", {"prompt": "hi", "stream": True, "echo": True})
    assert status == 400 and json.loads(body)["error"]["code"] == "unsupported"


# -- limits, cancellation, overload ----------------------------------------------------------------
def _slow(srv, seconds: float) -> None:
    """Make every decode step of this server's engine take at least ``seconds`` (timing tests)."""
    engine = srv.app.app.state.server.engine
    decode = engine.decode

    def slow_decode(*a, **kw):
        time.sleep(seconds)
        return decode(*a, **kw)
    engine.decode = slow_decode


def _health(srv) -> dict:
    return json.loads(request(srv, "GET", "/health")[2])


def _wait_idle(srv, within: float) -> float:
    t0 = time.perf_counter()
    while _health(srv)["running"] or _health(srv)["waiting"]:
        assert time.perf_counter() - t0 < within, f"still generating after {within} s"
        time.sleep(0.02)
    return time.perf_counter() - t0


def test_disconnect_cancels_generation(start_server, caplog):
    srv = start_server()
    _slow(srv, 0.2)                                   # the story takes ~3 s to generate
    u = urllib.parse.urlparse(srv.url)
    body = json.dumps({"messages": user("Tell me a short story."), "stream": True, "temperature": 0}).encode()
    with caplog.at_level("INFO", logger="mini_nanochat.access"):
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        conn.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        assert r.status == 200 and r.read(6) == b"data: "
        conn.sock.close()                             # the client goes away mid-stream
        conn.close()
        assert _wait_idle(srv, within=1.5) < 1.5
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=0.5)   # waiting for a whole answer
        conn.request("POST", "/v1/chat/completions", body=body.replace(b'"stream": true', b'"stream": false'),
                     headers={"Content-Type": "application/json"})
        with pytest.raises(TimeoutError):
            conn.getresponse()
        conn.close()
        assert _wait_idle(srv, within=2.0) < 2.0

        def gen():                                    # lines are written after the request ends: poll for both
            lines = [json.loads(rec.getMessage()) for rec in caplog.records if rec.name == "mini_nanochat.access"]
            return [x for x in lines if x["path"] == "/v1/chat/completions"]
        deadline = time.monotonic() + 10
        while len(gen()) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)                               # and no third line follows
    gen = gen()
    assert len(gen) == 2 and all(x["finish"] == ["cancelled"] and x["completion_tokens"] < 15 for x in gen)


def test_overload_answers_429_with_retry_after(start_server):
    srv = start_server(max_batch=1, max_queue=1)
    _slow(srv, 0.1)
    statuses: list = []

    def one():
        statuses.append(request(srv, "POST", "/v1/chat/completions",
                                {"messages": user("Tell me a short story."), "max_tokens": 8}))
    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join(timeout=60)
    codes = sorted(s for s, _, _ in statuses)
    assert codes.count(200) >= 2 and 429 in codes
    refused = next(x for x in statuses if x[0] == 429)
    assert refused[1]["retry-after"] == "1" and json.loads(refused[2])["error"]["code"] == "rate_limit_exceeded"
    assert "mini_nanochat_rejected_total{reason=\"queue_full\"}" in request(srv, "GET", "/metrics")[2].decode()


def test_request_timeout(start_server):
    srv = start_server(request_timeout=0.4)
    _slow(srv, 0.1)
    status, _, body = request(srv, "POST", "/v1/chat/completions", {"messages": user("Tell me a short story.")})
    assert status == 504 and json.loads(body)["error"]["code"] == "timeout"
    status, _, body = request(srv, "POST", "/v1/chat/completions",
                              {"messages": user("Tell me a short story."), "stream": True})
    events = list(sse.events([body]))
    assert events[-1] == "[DONE]" and json.loads(events[-2])["error"]["code"] == "timeout"


# -- safety and operations -------------------------------------------------------------------------
def test_api_key_and_host_check(start_server):
    srv = start_server(api_key="s3cret")
    body = {"messages": user("Who are you?"), "max_tokens": 3}
    status, _, payload = request(srv, "POST", "/v1/chat/completions", body)
    assert status == 401 and json.loads(payload)["error"]["code"] == "invalid_api_key"
    assert request(srv, "POST", "/v1/chat/completions", body, {"Authorization": "Bearer nope"})[0] == 401
    assert request(srv, "GET", "/metrics")[0] == 401
    assert request(srv, "GET", "/health")[0] == 200                     # a probe needs no key
    assert request(srv, "POST", "/v1/chat/completions", body, {"Authorization": "Bearer s3cret"})[0] == 200
    assert client(srv, api_key="s3cret").models.list().data[0].id == "sft_tiny"
    status, _, payload = request(srv, "GET", "/health", headers={"Host": "evil.example:8000"})
    assert status == 400 and json.loads(payload)["error"]["code"] == "bad_host"      # DNS rebinding


def test_serve_refuses_a_public_host_without_a_key():
    import argparse

    from phases.common.console import UserError
    from phases.phase9_serving.serve import add_arguments, is_loopback, settings_from
    p = argparse.ArgumentParser()
    add_arguments(p)
    with pytest.raises(UserError, match="without --api-key"):
        settings_from(p.parse_args(["--host", "0.0.0.0", "--api-key", ""]), "m")
    with pytest.raises(UserError, match="--api-key is blank"):          # issue 15 re-attack: " " was a key
        settings_from(p.parse_args(["--host", "0.0.0.0", "--api-key", "  "]), "m")
    with pytest.raises(UserError, match="top_p must be in"):           # request defaults: checked at start
        settings_from(p.parse_args(["--top-p", "2"]), "m")
    import socket

    from phases.phase9_serving.serve import _bind
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:                                                                # a busy port: one line, before the model
        with pytest.raises(UserError, match="cannot listen on 127.0.0.1"):
            _bind("127.0.0.1", busy.getsockname()[1])
    finally:
        busy.close()
    s = settings_from(p.parse_args(["--host", "0.0.0.0", "--api-key", "k"]), "m")
    assert s.api_key == "k" and not s.loopback_only
    assert settings_from(p.parse_args([]), "m").loopback_only
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and not is_loopback("10.0.0.1")


def test_metrics_and_access_log(live_server, caplog):
    def access_lines():
        return [json.loads(r.getMessage()) for r in caplog.records if r.name == "mini_nanochat.access"]

    with caplog.at_level("INFO", logger="mini_nanochat.access"):
        client(live_server).chat.completions.create(model="sft_tiny", messages=user("Count to five."), temperature=0)
        # the server writes the line after the last byte is sent, so the client can return first (a loaded CI
        # machine did): wait for it inside the block, while the logger still lets INFO through
        deadline = time.monotonic() + 10
        while not any(x["path"] == "/v1/chat/completions" for x in access_lines()) and time.monotonic() < deadline:
            time.sleep(0.02)
    line = [x for x in access_lines() if x["path"] == "/v1/chat/completions"][-1]
    assert line["path"] == "/v1/chat/completions" and line["status"] == 200 and line["finish"] == ["stop"]
    assert line["completion_tokens"] > 0 and line["ttft_ms"] > 0 and line["request_id"].startswith("chatcmpl-")
    status, headers, body = request(live_server, "GET", "/metrics")
    text = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/plain")
    for name in ("mini_nanochat_requests_total", "mini_nanochat_generation_tokens_total",
                 "mini_nanochat_queue_depth", "mini_nanochat_batch_size_bucket",
                 "mini_nanochat_time_to_first_token_seconds_bucket",
                 "mini_nanochat_time_per_output_token_seconds_bucket", "mini_nanochat_prefix_reused_tokens_total"):
        assert name in text, name
    health = _health(live_server)
    assert health["status"] == "ok" and health["model"] == "sft_tiny"


def test_prefix_reuse_and_history_fitting(start_server):
    srv = start_server(max_batch=2, context=512)
    first = [{"role": "system", "content": "You are terse. " * 5}, *user("Who are you?")]
    a = client(srv).chat.completions.create(model="sft_tiny", messages=first, temperature=0)
    text = a.choices[0].message.content
    second = first + [{"role": "assistant", "content": text}, *user("Count to five.")]
    b = client(srv).chat.completions.create(model="sft_tiny", messages=second, temperature=0)
    metrics = request(srv, "GET", "/metrics")[2].decode()
    reused = float(next(x for x in metrics.splitlines() if x.startswith("mini_nanochat_prefix_reused_tokens_total"))
                   .split()[-1])
    assert reused >= a.usage.prompt_tokens - 1                    # the whole first turn came from the cache
    fresh = start_server(max_batch=2, prefix_reuse=False, context=512)
    c = client(fresh).chat.completions.create(model="sft_tiny", messages=second, temperature=0)
    assert b.choices[0].message.content == c.choices[0].message.content
    long = []
    for q in QUESTIONS * 3:
        long += [*user(q), {"role": "assistant", "content": ANSWER[q]}]
    status, headers, body = request(srv, "POST", "/v1/chat/completions",
                                    {"messages": long + user("Who are you?"), "temperature": 0, "max_tokens": 20})
    assert status == 200 and int(headers["x-dropped-messages"]) > 0
    assert json.loads(body)["choices"][0]["message"]["content"] == ANSWER["Who are you?"]


# -- what lm-evaluation-harness's local-completions needs ------------------------------------------
def test_lm_eval_loglikelihood_request(live_server, chat_run):
    """The exact request local-completions sends for a multiple-choice task, parsed as it parses it."""
    import torch
    tok = chat_run["tok"]
    info = json.loads(request(live_server, "GET", "/tokenizer_info")[2])
    assert "eos_token" in info                                     # lm-eval's remote-tokenizer check
    tokenize = lambda text: json.loads(request(live_server, "POST", "/tokenize",  # noqa: E731
                                               {"prompt": text, "add_special_tokens": False})[2])["tokens"]
    assert tokenize("<|bos|>") == [tok.bos_token_id]
    ctx, cont = tokenize("The capital of France is"), tokenize(" Paris.")
    assert json.loads(request(live_server, "POST", "/detokenize", {"tokens": ctx + cont})[2])["prompt"] == \
        "The capital of France is Paris."
    status, _, body = request(live_server, "POST", "/v1/completions", {
        "model": "sft_tiny", "prompt": [ctx + cont], "temperature": 0, "max_tokens": 1, "logprobs": 1,
        "seed": 1234, "echo": True})
    assert status == 200
    choice = json.loads(body)["choices"][0]
    lp = choice["logprobs"]
    assert len(lp["token_logprobs"]) == len(ctx) + len(cont) + 1 == len(lp["top_logprobs"])
    ctxlen = len(ctx)
    got = sum(lp["token_logprobs"][ctxlen:-1])                           # lm-eval's parse_logprobs
    greedy = all(t == max(top.values()) for t, top in zip(lp["token_logprobs"][ctxlen:-1],
                                                          lp["top_logprobs"][ctxlen:-1]))
    ids = [tok.bos_token_id] + ctx + cont                                # read after <|bos|>
    with torch.no_grad():
        logp = chat_run["model"](torch.tensor([ids]))[0].log_softmax(-1)
    want = sum(float(logp[i - 1, ids[i]]) for i in range(1 + ctxlen, len(ids)))
    assert got == pytest.approx(want, abs=1e-4)
    assert isinstance(greedy, bool)
    assert choice["text"].startswith("The capital of France is Paris.")
