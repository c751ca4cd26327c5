"""Tests of tools/attention_visualizer.py: the pictures, the maps, the numbers, every view, real runs.

Every test runs with ``MINI_NANOCHAT_BASE_DIR`` pointing at a temporary folder (so no
trained tokenizer is found unless a test makes one) and uses 2-layer models, so the file
runs in seconds. The checkpoint test opens a run a real (tiny) training made.
"""
from __future__ import annotations

import io
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _tools import load_tool
import torch

from phases.phase0_tokenizer.bpe import BPETokenizer
from phases.phase1_transformer.config import GPTConfig
from phases.phase1_transformer.model import GPT

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "attention_visualizer.py"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
TINY = ["--depth", "2", "--seed", "1"]   # cpu-demo at depth 2: 2 layers x 2 heads, width 128


av = load_tool("attention_visualizer")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("MINI_NANOCHAT_BASE_DIR", str(tmp_path / "base"))
    monkeypatch.delenv("NO_COLOR", raising=False)


def run_tool(capsys, *argv) -> tuple[int, str, str]:
    code = av.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def read_png(path: Path) -> np.ndarray:
    """An (height, width, 3) uint8 array from a PNG (Pillow: what matplotlib writes with)."""
    from PIL import Image
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(data))
    assert image.mode in ("RGB", "RGBA") and (np.asarray(image)[..., 3:] == 255).all()   # opaque
    return np.asarray(image.convert("RGB"))


def on_colormap(rgb) -> bool:
    return bool((av.COLORMAP == np.asarray(rgb)).all(axis=1).any())


# -- the pieces -----------------------------------------------------------------------
def test_png_roundtrip(tmp_path):
    img = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    (tmp_path / "x.png").write_bytes(av.png_bytes(img))
    assert (read_png(tmp_path / "x.png") == img).all()


def test_colormap_runs_dark_to_bright_and_never_hits_the_mask_grey():
    lum = av.COLORMAP.astype(float) @ [0.299, 0.587, 0.114]
    assert (np.diff(lum) >= -1).all() and lum[-1] - lum[0] > 150
    assert not on_colormap(av.MASKED)
    assert list(av.color_index(np.array([0.0, 0.25, 1.0]))) == [0, 128, 255]   # sqrt scale


def test_entropy_of_uniform_rows_is_log_n():
    for n in (1, 2, 5, 17):
        row = torch.zeros(20)
        row[:n] = 1 / n
        assert float(av.row_entropy(row)) == pytest.approx(math.log(n), abs=1e-5)
    T = 6
    uniform = torch.tril(torch.ones(T, T))
    uniform = (uniform / uniform.sum(-1, keepdim=True))[None]            # (1 head, T, T)
    (r,) = av.summarize([uniform], [T])
    assert r["entropy"] == pytest.approx(r["uniform_entropy"], abs=1e-5)
    assert r["self"] == pytest.approx(float((1 / torch.arange(1, T + 1)).mean()), abs=1e-6)
    assert r["prev"] == pytest.approx(r["first"], abs=1e-6)


def test_maps_rows_sum_to_one_and_respect_causality_and_windows():
    cfg = GPTConfig.from_depth(4, vocab_size=256, sequence_len=64, head_dim=16, n_kv_head=2, window_pattern="SSSL")
    model = GPT.build(cfg, seed=0)
    assert av.override_windows(model, 3) == 3
    assert model.windows == [3, 3, 3, 64]
    T = 12
    maps = model.attention_maps(torch.randint(0, 256, (1, T)))
    assert len(maps) == 4 and maps[0].shape == (1, cfg.n_head, T, T)
    q, k = torch.arange(T)[:, None], torch.arange(T)[None, :]
    for layer, a in enumerate(maps):
        assert torch.allclose(a.sum(-1), torch.ones(1, cfg.n_head, T), atol=1e-5)
        assert (a[..., k > q] == 0).all()                                  # no peeking at the future
        outside = q - k > model.windows[layer]
        assert (a[..., outside] == 0).all()
        assert outside.any() == (layer < 3)                                # the last layer sees everything
        assert (a[..., (k <= q) & ~outside] > 0).all()


# -- the command ----------------------------------------------------------------------
def test_png_files(tmp_path, capsys):
    out_dir = tmp_path / "png"
    code, out, err = run_tool(capsys, "hello world", *TINY, "--window-pattern", "SL", "--window", "3",
                              "--png", str(out_dir), "--cell", "8")
    assert code == 0, err
    T = len(b"hello world")
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == ["grid.png", "layer0_head0.png", "layer0_head1.png", "layer1_head0.png", "layer1_head1.png"]
    img = read_png(out_dir / "layer0_head1.png")                       # layer 0: window 3
    assert img.shape == (T * 8, T * 8, 3)
    pixel = lambda q, k: tuple(img[q * 8 + 4, k * 8 + 4])              # noqa: E731  (centre of a cell)
    assert pixel(0, 5) == av.MASKED                                    # the future
    assert pixel(10, 2) == av.MASKED                                   # 8 tokens back: outside the window
    assert on_colormap(pixel(10, 7)) and on_colormap(pixel(5, 5))      # allowed: on the colour map
    assert pixel(0, 0) == tuple(av.COLORMAP[255])                      # token 0 only sees itself: weight 1
    full = read_png(out_dir / "layer1_head0.png")                      # the last layer is full context
    assert tuple(full[10 * 8 + 4, 2 * 8 + 4]) != av.MASKED
    grid = read_png(out_dir / "grid.png")
    assert grid.shape[0] == grid.shape[1] == 2 * (T * 8 + 4) + 4
    assert "wrote" in out and "grid.png" in out


def test_terminal_view_plain_and_colour(capsys, monkeypatch):
    code, out, _ = run_tool(capsys, "abcdef", *TINY, "--layer", "0", "--head", "1")
    assert code == 0 and not ANSI.search(out)                          # capsys is not a terminal
    assert "NOT trained" in out and "note: untrained weights" in out
    rows = [line for line in out.splitlines() if re.match(r"\s+\d+ \S+ ", line) and "max" in line]
    assert len(rows) == 6
    assert rows[0].split()[2] == "██" and rows[0].rstrip().endswith("max 1.00 at 0 a")   # only itself: weight 1
    assert "blank = masked" in out and "layer 0, head 1" in out
    table = out[re.search(r"layer +head +kv +window +entropy", out).start():].splitlines()
    assert len([r for r in table[1:] if re.match(r"\s+\d+\s+\d+\s+\d+\s+full", r)]) == 4   # 2 layers x 2 heads
    code, colored, _ = run_tool(capsys, "abcdef", *TINY, "--color")
    assert ANSI.search(colored) and av.MASKED_BG in colored
    monkeypatch.setenv("NO_COLOR", "1")
    code, out, _ = run_tool(capsys, "abcdef", *TINY)
    assert code == 0 and not ANSI.search(out)


def test_help_lists_examples(capsys):
    with pytest.raises(SystemExit) as exc:
        av.main(["--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and "examples" in out and "--checkpoint RUN_DIR" in out and "--window N" in out


def test_long_prompt_is_truncated_with_a_note(capsys):
    code, out, _ = run_tool(capsys, "x" * 30, *TINY, "--max-tokens", "8")
    assert code == 0
    assert "showing the first 8 of 30 tokens" in out
    assert not re.search(r"^\s+8 x ", out, re.M)


def test_html_page(tmp_path, capsys):
    page = tmp_path / "out" / "attention.html"
    code, _, err = run_tool(capsys, "héllo <b>", *TINY, "--n-kv-head", "1", "--html", str(page), "--bos")
    assert code == 0, err
    text = page.read_text(encoding="utf-8")
    assert text.count('class="map thumb"') == 2 * 2                     # one per layer x head
    assert text.count("data:image/png;base64,") == 2 * 2 + 1           # + the large view
    assert "src=\"http" not in text and "<b>" not in text.split("<script>")[0].split("<body>")[1]
    assert "&lt;|bos|&gt;" in text and "Entropy (nats)" in text and "<th>bos</th>" in text
    data = json.loads(re.search(r"const D=(.*?), tip=", text, re.S).group(1))
    assert len(data["labels"]) == 1 + len("héllo <b>".encode()) and len(data["w"]) == 2
    first = data["w"][0][0]
    assert first[0] == 1.0 and first[1] == -1                          # row 0: itself, then masked


def test_json_byte_fallback_and_bos(capsys):
    code, out, err = run_tool(capsys, "hi🙂", *TINY, "--bos", "--json")
    assert code == 0
    assert "no trained tokenizer" in err
    doc = json.loads(out)
    assert [t["id"] for t in doc["tokens"]] == [256] + list("hi🙂".encode())
    assert doc["tokens"][0]["label"] == "<|bos|>" and doc["tokens"][3]["label"].startswith("⟨F0")
    assert doc["model"]["fresh"] and len(doc["summary"]) == 4
    w = np.array(doc["selected"]["weights"])
    assert doc["selected"]["layer"] == 1 and w.shape == (7, 7)
    assert np.allclose(w.sum(1), 1, atol=1e-3)
    last = [r for r in doc["summary"] if r["layer"] == 1 and r["head"] == 0][0]
    assert last["self"] == pytest.approx(np.diag(w).mean(), abs=1e-3)
    assert last["first"] == pytest.approx(w[1:, 0].mean(), abs=1e-3)


def test_trained_tokenizer_and_ids(tmp_path, capsys):
    tok = BPETokenizer.train(["the cat sat on the mat, the cat " * 30], vocab_size=280)
    tok.save(tmp_path / "tok")
    code, out, err = run_tool(capsys, "the cat sat", *TINY, "--tokenizer", str(tmp_path / "tok"), "--json")
    assert code == 0 and "no trained tokenizer" not in err
    assert [t["id"] for t in json.loads(out)["tokens"]] == tok.encode("the cat sat")
    code, _, err = run_tool(capsys, "--ids", "1,500", *TINY, "--tokenizer", str(tmp_path / "tok"))
    assert code == 2 and f"500 is outside the vocabulary (0..{tok.vocab_size - 1})" in err
    code, out, _ = run_tool(capsys, "--ids", "1, 2,3", *TINY, "--json")
    assert code == 0 and [t["id"] for t in json.loads(out)["tokens"]] == [1, 2, 3]


@pytest.mark.parametrize("argv, message", [
    (["abc", "--layer", "5"], "--layer 5 is out of range"),
    (["abc", "--ids", "1,2"], "not both"),
    (["--ids", "1,x"], "comma-separated"),
    (["--ids", "9000"], "outside the model's vocabulary"),
    (["--ids", "-1"], "token ids are >= 0"),
    (["x" * 40, "--sequence-len", "32"], "longer than the model's sequence_len"),
    (["abc", "--window", "0"], "--window must be >= 1"),
])
def test_user_errors(capsys, argv, message):
    code, _, err = run_tool(capsys, *argv, *TINY)
    assert code == 2 and err.splitlines()[-1].startswith("error:") and message in err


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_tokenized):
    """A run directory made by a real (tiny, 3-step) training run of Phase 2's loop."""
    from phases.phase2_training.config import TrainConfig
    from phases.phase2_training.train import train
    run = tmp_path_factory.mktemp("attention_run") / "run"
    train(TrainConfig(depth=2, aspect_ratio=32, head_dim=16, sequence_len=32, device_batch_size=2, num_iterations=3,
                      warmup_steps=1, eval_every=0, eval_tokens=256, sample_tokens=2, n_kv_head=1,
                      data_dir=tiny_tokenized["data_dir"], tokenizer_dir=tiny_tokenized["tokenizer_dir"],
                      run_dir=str(run)), show_progress=False, out=io.StringIO())
    return run


def test_checkpoint_roundtrip(trained_run, tiny_tokenized, capsys):
    from phases.phase2_training import checkpoint as ck
    from phases.phase2_training import load
    meta = load.read_meta(trained_run)
    model, tok, _ = load.load_model(trained_run)                   # what --checkpoint opens
    assert model.config == GPTConfig(**meta["model_config"]) and tok.vocab_size == model.config.vocab_size
    weights = ck.load_weights(load.find_checkpoint(trained_run).path)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in weights.items())
    for spec in (str(trained_run), f"{trained_run}@3", str(trained_run / "checkpoints" / "step_000003")):
        code, out, err = run_tool(capsys, "hello", "--checkpoint", spec, "--json")
        doc = json.loads(out)
        assert code == 0 and not doc["model"]["fresh"] and "step 3" in doc["model"]["origin"]
        assert doc["model"]["config"]["n_layer"] == 2 and "no trained tokenizer" not in err
        assert [t["id"] for t in doc["tokens"]] == tiny_tokenized["tok"].encode("hello")   # the run's tokenizer
    code, out, _ = run_tool(capsys, "hello", "--checkpoint", str(trained_run))
    assert code == 0 and "checkpoint" in out and "untrained" not in out


def test_script_with_an_empty_checkpoint_folder_exits_2(tmp_path):
    # A real process, run as a file from another folder: the exit status and the one-line error.
    env = {"MINI_NANOCHAT_BASE_DIR": str(tmp_path / "base"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, str(TOOL), "--checkpoint", str(tmp_path)], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2 and proc.stderr.startswith("error:") and "Phase 2" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
