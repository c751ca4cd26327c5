"""The generation explorer (tools/generation_explorer.py): every view, on a fresh model and a run.

Its numbers are the engine's and the sampler's: the traced tokens equal ``generate_batch`` with
the same knobs and seed, branches reuse the cache and continue as a fresh generation would, the
tree's paths are the model's top tokens, and the HTML page's in-browser sampler matches Phase 1's
``probabilities`` (checked in headless Chromium when selenium is installed).
"""
from __future__ import annotations

import argparse
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from phases.phase1_transformer.sampling import probabilities
from phases.phase6_inference.conftest import make_model, prompt_of  # noqa: F401 (fixtures via conftest)
from phases.phase6_inference.engine import Engine, SamplingParams
from phases.phase6_inference import explore as ex
from tests._tools import load_tool

ge = load_tool("generation_explorer")
REPO = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[")


@pytest.fixture(scope="module")
def tok():
    from phases.phase0_tokenizer.bpe import BPETokenizer
    from phases.phase6_inference.conftest import TEXT
    return BPETokenizer.train([TEXT], vocab_size=400)


@pytest.fixture(scope="module")
def engine(tok):
    return Engine(make_model(tok, scale=0.3), tok)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tok, engine):
    from phases.phase6_inference.conftest import make_run
    return make_run(tmp_path_factory.mktemp("explorer_runs"), tok, engine.model)


def _args(**kw):
    base = dict(temperature=1.0, top_k=0, top_p=1.0, seed=42, max_tokens=12, chat=False, top=5, steps=16,
                color_by="surprisal", sweep=[], tree=None, branch=None, softcap=False, html=None, html_top=200, plot=None,
                json=False, description="test model")
    base.update(kw)
    return argparse.Namespace(**base)


def test_the_trace_is_what_the_engine_generates(engine, tok):
    prompt = prompt_of(tok, 20)
    for kw in (dict(temperature=0.0), dict(temperature=0.9, top_k=30, seed=5), dict(temperature=1.3, top_p=0.8)):
        params = SamplingParams(max_tokens=15, **kw)
        tr = ex.trace(engine, prompt, params)
        ref = engine.generate_batch(prompt, max_tokens=15, **kw)[0]
        assert [s.token for s in tr.steps] == ref.tokens and tr.text == ref.text
        for s in tr.steps:                                   # the table's numbers are the sampler's
            assert s.alternatives[0][2] >= s.p_model
            assert 0 < s.p_model <= 1 and s.entropy >= 0


def test_a_branch_reuses_the_prefix_and_continues_like_a_fresh_generation(engine, tok):
    prompt = prompt_of(tok, 15, seed=2)
    params = SamplingParams(max_tokens=12, temperature=0.8, seed=3)
    base = ex.trace(engine, prompt, params)
    br = ex.branch(engine, base, step=3, rank=1)
    assert [s.token for s in br.steps[:3]] == [s.token for s in base.steps[:3]]
    second = base.steps[3].logits.argsort(descending=True)[1].item()
    assert br.steps[3].token == second
    fresh = engine.generate_batch(prompt + [s.token for s in br.steps[:4]], max_tokens=8, temperature=0.8, seed=3)
    assert [s.token for s in br.steps[4:]] == fresh[0].tokens


def test_the_tree_follows_the_top_tokens_and_continues_each_leaf(engine, tok):
    prompt = prompt_of(tok, 10, seed=4)
    params = SamplingParams(max_tokens=5, temperature=0.0)
    leaves = ex.tree(engine, prompt, width=3, depth=2, params=params)
    assert len(leaves) == 9
    with torch.no_grad():
        first = engine.model(torch.tensor([prompt]))[0, -1].softmax(-1).topk(3).indices.tolist()
    assert [lf["path"][0][0] for lf in leaves[::3]] == first
    for lf in leaves:
        path = [t for t, _ in lf["path"]]
        with torch.no_grad():
            top = engine.model(torch.tensor([prompt + path[:1]]))[0, -1].softmax(-1).topk(3).indices.tolist()
        assert path[1] in top
        ref = engine.generate_batch(prompt + path, max_tokens=5, temperature=0.0)[0]
        assert lf["continuation"] == ref.tokens


def test_the_softcap_view(engine, tok):
    prompt = prompt_of(tok, 10)
    sc = ex.softcap_view(engine, prompt)
    with torch.no_grad():
        logits = engine.model(torch.tensor([prompt]))[0, -1]
    assert sc["capped"]["max_logit"] == pytest.approx(logits.max().item(), abs=1e-4)
    assert abs(sc["raw"]["max_logit"]) >= abs(sc["capped"]["max_logit"]) - 1e-6
    assert sc["capped"]["max_logit"] < 15


def test_the_html_page_holds_the_logits(engine, tok, tmp_path):
    prompt = prompt_of(tok, 10)
    tr = ex.trace(engine, prompt, SamplingParams(max_tokens=6, temperature=0.7))
    data = ge.page_data(engine, tr, keep=500)                 # vocab 395 <= 500: every logit, exact
    assert data["exact"] and len(data["steps"]) == 6
    assert data["steps"][0]["logits"] == sorted(data["steps"][0]["logits"], reverse=True)
    small = ge.page_data(engine, tr, keep=50)                 # the rest goes into a histogram
    assert not small["exact"] and sum(c for _, c in small["steps"][0]["tail"]) == 395 - 50
    page = ge.render_html(data, "test")
    assert page.startswith("<!doctype html>") and "http" not in page.split("<script")[0]
    assert json.loads(re.search(r'<script id="data" type="application/json">(.*?)</script>', page, re.S)
                      .group(1).replace("<\\/", "</"))["steps"][0]["chosen"] == tr.steps[0].token


def _browser():
    try:
        from selenium import webdriver
    except ImportError:
        return None
    if not shutil.which("chromium") and not shutil.which("chromium-browser"):
        return None
    opts = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        opts.add_argument(flag)
    try:
        return webdriver.Chrome(options=opts)
    except Exception:  # noqa: BLE001 - no driver on this machine
        return None


@pytest.mark.slow
def test_the_page_sampler_matches_phase1_in_a_real_browser(engine, tok, tmp_path):
    driver = _browser()
    if driver is None:
        pytest.skip("needs selenium and Chromium")
    try:
        tr = ex.trace(engine, prompt_of(tok, 10), SamplingParams(max_tokens=3, temperature=1.0))
        data = ge.page_data(engine, tr, keep=500)
        page = tmp_path / "explore.html"
        page.write_text(ge.render_html(data, "test"), encoding="utf-8")
        driver.get(page.as_uri())
        step = data["steps"][1]
        full = tr.steps[1].logits[None]
        for T, K, P in ((1.0, 0, 1.0), (0.5, 0, 1.0), (1.5, 20, 1.0), (0.8, 0, 0.7), (1.2, 40, 0.9), (0.0, 0, 1.0)):
            got = driver.execute_script(f"return explorerDist(JSON.parse(arguments[0]), {T}, {K}, {P}).p",
                                        json.dumps(step))
            want = probabilities(full, T, K or None, P if P < 1 else None)[0][step["ids"]]
            assert got == pytest.approx(want.tolist(), abs=2e-5), (T, K, P)
    finally:
        driver.quit()


def test_sweeps_branch_and_tree_through_explore(engine, tok):
    out = io.StringIO()
    res = ge.explore(engine, _args(sweep=["temperature=0,1.5", "top_k=1,50"], branch="1:2", tree="2x2",
                                   softcap=True), "The cat", False, out)
    text = out.getvalue()
    assert not ANSI.search(text)
    assert [r["temperature"] for r in res["sweeps"][0]["rows"]] == [0.0, 1.5]
    assert res["sweeps"][1]["rows"][0]["distinct"] <= res["sweeps"][1]["rows"][1]["distinct"] + 12
    assert len(res["tree"]) == 4 and "branch at step 1, rank 2" in text and "softcap" in text
    for bad in (dict(sweep=["warmth=1"]), dict(branch="x"), dict(tree="3"), dict(branch="99:0")):
        with pytest.raises(ge.UserError):
            ge.explore(engine, _args(**bad), "The cat", False, io.StringIO())


def test_the_knobs_plot(engine, tmp_path):
    pytest.importorskip("matplotlib")
    res = ge.explore(engine, _args(plot=str(tmp_path / "knobs.png"), max_tokens=2), "The cat", False, io.StringIO())
    assert (tmp_path / "knobs.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and res["plot"]


def test_interactive_mode(engine):
    inp = io.StringIO("The cat\n:t 0\n:k 5\nThe cat\n:steps\n:branch 0:1\n:tree 2x1\n:softcap\n:t -1\n:q\nnever read\n")
    out = io.StringIO()
    ge.interactive(engine, _args(), False, inp, out)
    text = out.getvalue()
    assert "temperature = 0.0" in text and "top_k = 5" in text and "branch at step 0" in text
    assert "branching tree" in text and "softcap" in text and "error: temperature" in text


def _cli(*argv, env_base):
    import os
    env = dict(os.environ, MINI_NANOCHAT_BASE_DIR=str(env_base), PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, str(REPO / "tools" / "generation_explorer.py"), *argv],
                          capture_output=True, text=True, timeout=300, env=env, cwd=REPO)


@pytest.mark.slow
def test_the_command_line_on_a_fresh_model_and_on_a_run(run_dir, tmp_path):
    fresh = _cli("Hello", "--max-tokens", "5", "--preset", "cpu-demo", env_base=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    assert "untrained" in fresh.stderr and not ANSI.search(fresh.stdout)    # piped: plain text
    run = _cli("Hello", "--run", run_dir, "--max-tokens", "6", "--json", "--tree", "2x1", "--html",
               str(tmp_path / "p.html"), env_base=tmp_path)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert len(result["generation"]["steps"]) <= 6 and len(result["tree"]) == 2 and (tmp_path / "p.html").is_file()
    colored = _cli("Hello", "--run", run_dir, "--max-tokens", "4", "--color", env_base=tmp_path)
    assert ANSI.search(colored.stdout)
    bad = _cli("Hello", "--run", str(tmp_path / "missing"), env_base=tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr
