"""Phase 6: the ``mini-nanochat generate`` command (``generate.py``), run in-process on a tiny run."""
from __future__ import annotations

import json

import pytest

from phases.phase6_inference import generate

pytestmark = pytest.mark.phase6


def test_it_streams_the_completion_the_engine_gives(tiny_run, tok, model, capsys):
    from phases.phase6_inference.engine import Engine
    assert generate.main(["Hello", "--run", tiny_run, "--max-tokens", "8", "--temperature", "0", "--no-color"]) == 0
    out = capsys.readouterr().out
    want = Engine(model, tok).generate_batch(tok.encode("Hello", prepend="<|bos|>"), max_tokens=8, temperature=0)[0]
    assert out == "Hello" + want.text + "\n"


def test_samples_json_and_chat(tiny_run, capsys):
    assert generate.main(["Hi", "--run", tiny_run, "-n", "3", "--max-tokens", "5", "--json", "--logprobs",
                          "--seed", "1"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["sample"] for r in rows] == [0, 1, 2]
    assert all(len(r["tokens"]) == len(r["logprobs"]) <= 5 for r in rows)
    assert generate.main(["Hi", "--run", tiny_run, "-n", "2", "--max-tokens", "4", "--chat", "--no-color"]) == 0
    assert capsys.readouterr().out.count("--- sample") == 2


def test_many_samples_run_in_batches_with_the_same_samples(tiny_run, capsys):
    """Issue 15 re-attack: ``-n 100000 --max-tokens 4`` ran one 100,000-row batch for minutes
    with no output. Samples now run ``--batch-size`` at a time with a progress bar, and each
    sample's generator is seeded by its number, so the batch size changes nothing."""
    import json

    argv = ["Hi", "--run", tiny_run, "-n", "5", "--max-tokens", "6", "--temperature", "1.0", "--json"]
    assert generate.main(argv) == 0
    one_batch = capsys.readouterr().out
    assert generate.main(argv + ["--batch-size", "2"]) == 0
    out, err = capsys.readouterr()
    assert out == one_batch
    assert [json.loads(line)["sample"] for line in out.splitlines()] == [0, 1, 2, 3, 4]
    assert "samples" in err and "5/5" in err                       # the progress bar (stderr)
    assert generate.main(["Hi", "--run", tiny_run, "-n", "3", "--batch-size", "2", "--max-tokens", "3",
                          "--no-color"]) == 0
    text = capsys.readouterr().out
    assert [text.count(f"--- sample {i} (") for i in (1, 2, 3)] == [1, 1, 1]


@pytest.mark.parametrize("argv, message", [
    (["x", "--run", "/nonexistent/run"], "no run or checkpoint"),
    (["x", "--top-p", "1.5"], "top-p"),
    (["", ], "empty"),
    (["x", "--logprobs"], "--logprobs needs --json"),             # issue 15 re-attack: it was silently ignored
    (["x", "--device", "tpu"], "'tpu' is not a device"),           # ... a RuntimeError traceback from load_model
    (["x", "--stop", ""], "stop strings must be non-empty"),      # ... a ValueError traceback from the engine
    (["x", "--temperature", "inf"], "finite"),
    (["x", "-n", "1000000000", "--batch-size", "1000000000"],
     "a KV cache of 1,000,000,000 rows"),                          # ... built a billion row states first
])
def test_user_mistakes_are_one_line_errors(tiny_run, capsys, argv, message):
    argv = argv if "--run" in argv else argv + ["--run", tiny_run]
    assert generate.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and "Traceback" not in err


def test_a_checkpoint_with_nan_weights_is_one_clear_error(tmp_path, tok, model, capsys):
    """Issue 15 re-attack: NaN weights (a diverged run, or an altered file re-hashed) gave a
    RuntimeError traceback from the sampler; now load_model says which file and what to do."""
    import copy

    import torch

    from phases.phase6_inference.conftest import make_run
    broken = copy.deepcopy(model)
    with torch.no_grad():
        next(broken.parameters()).fill_(float("nan"))
    run = make_run(tmp_path, tok, broken, name="diverged")
    assert generate.main(["x", "--run", run]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "NaN or inf" in err and "Traceback" not in err


def test_the_parser_mounts_on_any_parser():
    import argparse
    parser = generate.add_arguments(argparse.ArgumentParser(prog="mini-nanochat generate"))
    args = parser.parse_args(["a prompt", "--run", "r", "-n", "2", "--top-k", "0", "--stop", "\n\n"])
    assert (args.prompt, args.num_samples, args.top_k, args.stop) == ("a prompt", 2, 0, ["\n\n"])
    with pytest.raises(SystemExit):
        parser.parse_args(["p", "--run", "r", "--temperature", "-1"])
