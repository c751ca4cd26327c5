"""Phase 9 checkpoint: what `mini-nanochat serve` serves to a person — the chat page, in a real headless browser (Debian's Chromium, Selenium).

The page is loaded from a running server with every non-local request refused
(``tests/browser.py``), then used as a person would: send a message and watch the reply
stream in, see a calculator call drawn as its own element, check that HTML and
``<script>`` in a reply stay text, edit a message, regenerate, stop a reply midway,
start a new chat. A screenshot is saved (its path is printed). Under ``CI=true`` a
missing browser fails the test instead of skipping it.
"""
from __future__ import annotations

import json
import time

import pytest

from phases.phase9_serving.conftest import CONVERSATIONS, _text
from tests.browser import browser, browser_session  # noqa: F401  (fixtures)

pytestmark = pytest.mark.phase9
ANSWER = {q: _text(a) for q, a in CONVERSATIONS}
IDLE = "return document.body.dataset.state === 'idle'"


def replies(b) -> int:
    return int(b.js("return document.body.dataset.replies || '0'"))


def after(b, action: str, *args) -> None:
    """Run ``action`` (JavaScript) and wait until the reply it starts has ended."""
    before = replies(b)
    b.js(action, *args)
    b.wait_for(f"return Number(document.body.dataset.replies || 0) > {before} && "
               "document.body.dataset.state === 'idle'", timeout=60, what="the reply to finish")


def send(b, text: str) -> None:
    after(b, "document.getElementById('input').value = arguments[0];"
             "document.getElementById('send').click();", text)


def messages(b) -> list[dict]:
    return b.js("return [...document.querySelectorAll('#messages .msg')].map(m => ({"
                "role: m.classList.contains('user') ? 'user' : 'assistant',"
                "text: m.querySelector('.content') ? m.querySelector('.content').innerText : '',"
                "html: m.querySelector('.content') ? m.querySelector('.content').innerHTML : ''}))")


def test_chat_page_in_a_real_browser(browser, start_server):  # noqa: F811 (fixture)
    srv = start_server(max_batch=4)
    b = browser
    b.open(srv.url + "/")
    b.wait_for(IDLE + " && document.getElementById('model').textContent === 'sft_tiny'", timeout=30,
               what="the page to find the model")
    b.js("document.getElementById('temperature').value = '0'")

    # a streamed reply, multi-byte UTF-8 decoded whole, with live TTFT and tokens/s
    send(b, "Say hello in Japanese.")
    m = messages(b)
    assert [x["role"] for x in m] == ["user", "assistant"]
    assert m[1]["text"].strip() == ANSWER["Say hello in Japanese."]
    assert b.text("#ttft").startswith("TTFT ") and b.text("#ttft").endswith(" ms")
    assert b.text("#tps").endswith("tok/s") and "–" not in b.text("#tps")

    # a calculator call is its own element
    send(b, "What is 48/2?")
    calc = b.js("const c = document.querySelector('#messages .msg:last-child .calc');"
                "return c && [c.querySelector('.calc-expr').textContent, c.querySelector('.calc-result').textContent]")
    assert calc == ["48/2", "24"]

    # model output with HTML and <script> is shown as text, never run or rendered
    b.js("window.__xss = 0")
    send(b, "Write some HTML.")
    last = messages(b)[-1]
    assert "<script>alert('x')</script>" in last["text"] and "<b>bold</b>" in last["text"]
    assert b.js("return document.querySelectorAll('#messages script, #messages .msg b').length") == 0
    shot = b.screenshot("phase9_chat_page", full_page=True)
    print(f"screenshot of the chat page: {shot}")
    hostile = ["<img src=x onerror='window.__xss=1'>", "[link](javascript:window.__xss=1)",
               "<iframe src='javascript:window.__xss=1'></iframe>", "<svg onload='window.__xss=1'>"]
    rendered = b.js("return arguments[0].map(t => renderMarkdown(t))", hostile)
    dangerous = b.js(
        "const d = document.createElement('div'); d.innerHTML = arguments[0].join('');"
        "const bad = [...d.querySelectorAll('*')].filter(e => /^(script|iframe|img|svg|object|embed)$/i.test(e.tagName)"
        "  || [...e.attributes].some(a => a.name.startsWith('on') || /javascript:/i.test(a.value)));"
        "document.body.appendChild(d); return bad.map(e => e.outerHTML)", rendered)
    assert dangerous == [], rendered
    time.sleep(0.3)
    assert b.js("return window.__xss") == 0

    # edit the first message: everything after it goes, the edited one is answered
    b.js("document.querySelector('#messages .msg.user .edit').click()")
    after(b, "document.querySelector('.edit-box').value = 'Count to five.';"
             "document.querySelector('#messages .save').click()")
    m = messages(b)
    assert [(x["role"], x["text"].strip()) for x in m] == [("user", "Count to five."),
                                                          ("assistant", ANSWER["Count to five."])]

    # regenerate asks again (a new request) and replaces the reply
    posts = lambda: sum(1 for u in b.requests() if u.endswith("/v1/chat/completions"))  # noqa: E731
    before = posts()
    after(b, "document.querySelector('#messages .regenerate').click()")
    assert posts() == before + 1 and len(messages(b)) == 2
    assert messages(b)[1]["text"].strip() == ANSWER["Count to five."]

    # stop a reply midway: the page keeps what came, the server stops generating
    engine = srv.app.app.state.server.engine
    decode = engine.decode
    engine.decode = lambda *a, **kw: (time.sleep(0.2), decode(*a, **kw))[1]
    b.js("document.getElementById('input').value = 'Tell me a short story.';"
         "document.getElementById('send').click();")
    b.wait_for("const c = document.querySelector('#messages .msg:last-child .content');"
               "return c && c.innerText.length > 3", timeout=30, what="some text")
    b.js("document.getElementById('stop').click()")
    b.wait_for(IDLE, timeout=10)
    partial = messages(b)[-1]["text"].strip()
    assert 0 < len(partial) < len(ANSWER["Tell me a short story."]) and "Stopped" in b.text("#notice")
    deadline = time.time() + 2
    while json.loads(b.js("return 1") and _health(srv))["running"]:
        assert time.time() < deadline, "the server kept generating after Stop"
        time.sleep(0.05)
    engine.decode = decode

    # a new chat starts empty
    b.js("document.getElementById('new-chat').click()")
    assert messages(b) == []

    assert b.outside == [], f"the page tried to reach other hosts: {b.outside}"
    assert b.console_errors() == []
    assert b.failed_requests() == []


def _health(srv) -> str:
    import urllib.request
    with urllib.request.urlopen(srv.url + "/health") as r:
        return r.read().decode()
