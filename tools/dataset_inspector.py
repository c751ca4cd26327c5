#!/usr/bin/env python3
"""Dataset inspector: look inside pretraining shards and chat files before you train on them.

Usage (from the repository root):

    python tools/dataset_inspector.py DATA                         # stats + 3 random samples
    python tools/dataset_inspector.py DATA --samples 5 --seed 7    # other samples, reproducibly
    python tools/dataset_inspector.py chat.jsonl --validate        # every problem, with its line number
    python tools/dataset_inspector.py DATA --analyze-lengths --max-seq-len 2048
    python tools/dataset_inspector.py DATA --duplicates            # exact and near duplicates
    python tools/dataset_inspector.py DATA --export sample.jsonl   # the inspected records as JSONL
    python tools/dataset_inspector.py DATA --json                  # everything as one JSON object

``DATA`` is a parquet shard, a folder of ``shard_*.parquet`` files (what ``mini-nanochat
data download`` and the embedded corpus produce), or a chat file in JSON Lines: each line
either a bare JSON array of messages or ``{"messages": [...]}`` (the two formats our
loaders accept). Chat samples are rendered as the model sees them, coloured by loss mask.

Token lengths need a tokenizer: ``--tokenizer DIR``, else ``<base>/tokenizer`` (made by
``mini-nanochat tokenizer train``). Without one, lengths are in characters and samples are
shown as plain text. Exit status: 0 fine; 1 a file cannot be used (empty, truncated, not
parquet, no ``text`` column, null rows: listed even without ``--validate``) or ``--validate``
found problems in the records; 2 a usage error (``error: …``). What it leaves out: a web UI,
remote datasets (download first), fuzzy matching beyond word 3-gram MinHash.
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import random
import sys
from collections import Counter
from pathlib import Path

import numpy as np

import _view  # noqa: F401  (puts the repository root on sys.path)
from phases.common.console import UserError, paint, run_command, use_color
from phases.common.files import atomic_write_text, output_file, read_text
from phases.common.paths import tokenizer_dir
from phases.phase0_tokenizer.bpe import FILENAME, BPETokenizer
from phases.phase0_tokenizer.chat import ConversationError, check_conversation, render_conversation
from phases.phase0_tokenizer.shards import list_shards, open_shard, read_row_group, shard_problem
from phases.phase0_tokenizer.visualize import render_mask

NUM_PERM, BANDS = 32, 8  # MinHash: 32 hashes in 8 bands of 4 -> pairs with Jaccard >= ~0.6 meet in a band
PRIME = (1 << 31) - 1    # hashes below 2^31: a*h + b stays below 2^63, no uint64 overflow


def read_parquet(path: Path, limit: int, problems: list[str]) -> tuple[list[dict], dict]:
    """Up to ``limit`` documents ``{"where", "text"}`` and file-level stats; problems are collected."""
    records, stats = [], {"files": 0, "row_groups": 0, "rows_in_files": 0, "null_rows": 0, "empty_docs": 0,
                          "unusable_files": []}
    for f in list_shards(path, "all") if path.is_dir() else [path]:
        if (problem := shard_problem(f)) is not None:   # a loader refuses it: always reported
            stats["unusable_files"].append(f"{f}: {problem}")
        try:
            pf = open_shard(f, allow_null=True)
        except UserError as e:
            problems.append(f"{f}: {problem or e}")
            continue
        stats["files"] += 1
        stats["row_groups"] += pf.metadata.num_row_groups
        stats["rows_in_files"] += pf.metadata.num_rows
        for rg in range(pf.metadata.num_row_groups):
            if len(records) >= limit:
                break
            try:
                texts = read_row_group(f, rg, pf, allow_null=True)
            except UserError as e:
                problems.append(str(e))
                continue
            for i, t in enumerate(texts[:limit - len(records)]):
                where = f"{f.name} row group {rg} row {i}"
                if t is None:
                    stats["null_rows"] += 1
                    problems.append(f"{where}: null text")
                    continue
                if not t.strip():
                    stats["empty_docs"] += 1
                    problems.append(f"{where}: empty document")
                records.append({"where": where, "text": t})
    return records, stats


def read_chat(path: Path, limit: int, problems: list[str]) -> tuple[list[dict], dict]:
    """Valid conversations ``{"where", "messages"}``; each bad line becomes ``line N: …``."""
    records, stats = [], {"lines": 0, "blank_lines": 0, "bad_lines": 0}
    lines = read_text(path, "", give="a JSONL file").splitlines()
    for n, line in enumerate(lines, 1):
        if len(records) >= limit:
            break
        stats["lines"] += 1
        if not line.strip():
            stats["blank_lines"] += 1
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, (list, dict)):
                raise ConversationError(f"expected a JSON array of messages or an object with 'messages', "
                                        f"got {type(obj).__name__}")
            messages = check_conversation(obj)   # what render_conversation would reject, without a tokenizer
            for i, m in enumerate(messages):
                if isinstance(m["content"], str) and not m["content"].strip():
                    raise ConversationError(f"message {i} ({m['role']}) has empty content")
        except json.JSONDecodeError as e:
            problem = f"invalid JSON ({e.msg} at column {e.colno})"
        except RecursionError:                   # 100,000 nested '[': no conversation is that deep
            problem = "JSON nested too deeply to be a conversation"
        except ConversationError as e:
            problem = str(e)
        else:
            records.append({"where": f"line {n}", "messages": obj["messages"] if isinstance(obj, dict) else obj})
            continue
        stats["bad_lines"] += 1
        problems.append(f"line {n}: {problem}")
    return records, stats


def chat_stats(records: list[dict]) -> dict:
    """Roles, turns and tool use. A tool call is counted once per ``python`` part (not per message)."""
    roles, turns, calls, outputs, with_tools, with_system = Counter(), [], 0, 0, 0, 0
    for r in records:
        msgs = r["messages"]
        roles.update(m["role"] for m in msgs)
        turns.append(sum(m["role"] == "assistant" for m in msgs))
        with_system += msgs[0]["role"] == "system"
        parts = [p for m in msgs if isinstance(m["content"], list) for p in m["content"]]
        c = sum(p.get("type") == "python" for p in parts)
        calls += c
        outputs += sum(p.get("type") == "python_output" for p in parts)
        with_tools += c > 0
    return {"conversations": len(records), "roles": dict(roles), "with_system": with_system,
            "assistant_turns_mean": float(np.mean(turns)) if turns else 0.0,
            "tool_calls": calls, "tool_outputs": outputs, "conversations_with_tools": with_tools}


def flat_text(record: dict) -> str:
    if "text" in record:
        return record["text"]
    return "\n".join(c if isinstance(c := m["content"], str) else " ".join(p.get("text", "") for p in c)
                     for m in record["messages"])


def token_lengths(records: list[dict], tok: BPETokenizer | None) -> tuple[list[int], str]:
    """Lengths as the loaders see them: BOS + document ids, or a rendered conversation."""
    if tok is None:
        return [len(flat_text(r)) for r in records], "chars"
    if records and "text" in records[0]:
        ids = tok.encode_batch([r["text"] for r in records], prepend="<|bos|>")
        return [len(i) for i in ids], "tokens"
    return [len(render_conversation(tok, r["messages"], max_tokens=1 << 62)[0]) for r in records], "tokens"


def length_report(lengths: list[int], unit: str, max_seq_len: int) -> dict:
    if not lengths:
        return {"unit": unit, "count": 0}
    a = np.asarray(lengths)
    p50, p90, p99 = (float(np.percentile(a, q)) for q in (50, 90, 99))
    return {"unit": unit, "count": len(a), "mean": float(a.mean()), "min": int(a.min()), "max": int(a.max()),
            "p50": p50, "p90": p90, "p99": p99, "max_seq_len": max_seq_len,
            "over_max_seq_len": float((a > max_seq_len).mean()), "total": int(a.sum())}


def _shingles(text: str) -> np.ndarray:
    words = text.lower().split()
    grams = {" ".join(words[i:i + 3]) for i in range(max(1, len(words) - 2))}
    return np.array([int.from_bytes(hashlib.blake2b(g.encode(), digest_size=8).digest(), "little") % PRIME
                     for g in grams], dtype=np.uint64)


def duplicates(records: list[dict], threshold: float, seed: int = 0) -> dict:
    """Exact duplicates (same whitespace-normalised text) and near duplicates (MinHash + LSH)."""
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        key = hashlib.sha256(" ".join(flat_text(r).split()).encode()).hexdigest()
        groups.setdefault(key, []).append(i)
    exact = [g for g in groups.values() if len(g) > 1]
    firsts = sorted(g[0] for g in groups.values())  # near duplicates among distinct texts only
    rng = np.random.default_rng(seed)
    a = rng.integers(1, PRIME, NUM_PERM, dtype=np.uint64)   # NUM_PERM random hash functions
    b = rng.integers(0, PRIME, NUM_PERM, dtype=np.uint64)   # h -> (a*h + b) mod PRIME
    sigs = {}
    for i in firsts:
        sh = _shingles(flat_text(records[i]))
        # P(min-hashes of two sets agree) = their Jaccard similarity, for each hash function
        sigs[i] = ((np.outer(a, sh) + b[:, None]) % np.uint64(PRIME)).min(axis=1)  # (NUM_PERM,)
    buckets: dict[tuple, list[int]] = {}
    rows = NUM_PERM // BANDS
    for i, s in sigs.items():
        for band in range(BANDS):
            buckets.setdefault((band, s[band * rows:(band + 1) * rows].tobytes()), []).append(i)
    pairs = set()
    for members in buckets.values():
        for i, j in itertools.combinations(members, 2):
            sim = float((sigs[i] == sigs[j]).mean())   # estimated Jaccard of the 3-gram sets
            if sim >= threshold:
                pairs.add((i, j, round(sim, 3)))
    return {"exact_groups": [[records[i]["where"] for i in g] for g in exact],
            "exact_extra_copies": sum(len(g) - 1 for g in exact),
            "near_pairs": [[records[i]["where"], records[j]["where"], s] for i, j, s in sorted(pairs)],
            "near_threshold": threshold}


def load_tokenizer(path: Path | None) -> BPETokenizer | None:
    if path is not None:
        return BPETokenizer.load(path)              # a clear error when it holds no tokenizer
    return BPETokenizer.load(tokenizer_dir()) if (tokenizer_dir() / FILENAME).is_file() else None


def render_sample(record: dict, tok: BPETokenizer | None, color: bool, max_chars: int) -> str:
    if "text" in record:
        text = record["text"]
        return text if len(text) <= max_chars else text[:max_chars] + f" … [{len(text) - max_chars:,} more chars]"
    if tok is None:
        return "\n".join(f"{m['role']}: {flat_text({'messages': [m]})}" for m in record["messages"])
    ids, mask = render_conversation(tok, record["messages"], max_tokens=1 << 62)
    return render_mask(tok, ids, mask, color)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python tools/dataset_inspector.py",
                                description="Inspect pretraining shards (parquet) and chat data (JSONL).")
    p.add_argument("data", type=Path, help="a .parquet shard, a folder of shards, or a .jsonl chat file")
    p.add_argument("--samples", type=int, default=3, metavar="K", help="random samples to show (default 3; 0: none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample draw (default 0)")
    p.add_argument("--validate", action="store_true", help="list every problem; exit status 1 if any")
    p.add_argument("--analyze-lengths", action="store_true", help="length percentiles and share over --max-seq-len")
    p.add_argument("--max-seq-len", type=int, default=2048, help="for --analyze-lengths (default 2048)")
    p.add_argument("--duplicates", action="store_true", help="exact and near-duplicate detection")
    p.add_argument("--near-threshold", type=float, default=0.8, help="estimated Jaccard for near duplicates")
    p.add_argument("--export", type=Path, metavar="FILE", help="write the inspected records as JSONL")
    p.add_argument("--limit", type=int, default=20_000, help="inspect at most this many records (default 20,000)")
    p.add_argument("--max-chars", type=int, default=600, help="characters shown per document sample")
    p.add_argument("--tokenizer", type=Path, metavar="DIR", help="tokenizer folder (default <base>/tokenizer)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout, for scripts")
    colors = p.add_mutually_exclusive_group()
    colors.add_argument("--no-color", dest="color", action="store_false", default=None, help="no ANSI colour")
    colors.add_argument("--color", dest="color", action="store_true", help="colour even when piped")
    return p


def inspect(args: argparse.Namespace) -> dict:
    """Everything the flags ask for, as a dict (the --json output)."""
    if not args.data.exists():
        raise UserError(f"{args.data} does not exist")
    for name in ("samples", "limit", "max_seq_len", "max_chars"):
        if getattr(args, name) < (0 if name == "samples" else 1):
            raise UserError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if not 0 < args.near_threshold <= 1:
        raise UserError(f"--near-threshold must be in (0, 1], got {args.near_threshold}")
    if args.export:
        output_file(args.export, "--export")              # before the work, not after it
    tok = load_tokenizer(args.tokenizer)
    kind = "parquet" if args.data.is_dir() or args.data.suffix == ".parquet" else "chat"
    problems: list[str] = []
    records, file_stats = (read_parquet if kind == "parquet" else read_chat)(args.data, args.limit, problems)
    if kind == "chat" and not records:                    # nothing a chat loader could use
        bad = file_stats["bad_lines"]
        file_stats["unusable_files"] = [f"{args.data}: no valid conversation ({bad} bad line(s)"
                                        f"{'; --validate lists them' if bad else ': the file is empty'})"]
    out: dict = {"data": str(args.data), "kind": kind, "records": len(records), **file_stats}
    if kind == "parquet":
        chars = [len(r["text"]) for r in records]
        out.update(chars_total=int(sum(chars)), chars_mean=float(np.mean(chars)) if chars else 0.0)
    else:
        out.update(chat_stats(records))
    picked = sorted(random.Random(args.seed).sample(range(len(records)), min(args.samples, len(records))))
    out["samples"] = [{"where": records[i]["where"],
                       "rendered": render_sample(records[i], tok, use_color(sys.stdout, args.color), args.max_chars)}
                      for i in picked]
    out.update({"problems": problems} if args.validate else {})
    if args.analyze_lengths:
        out["lengths"] = length_report(*token_lengths(records, tok), args.max_seq_len)
    if args.duplicates:
        out["duplicates"] = duplicates(records, args.near_threshold, args.seed)
    if args.export:
        lines = [json.dumps({"text": r["text"]} if "text" in r else {"messages": r["messages"]}, ensure_ascii=False)
                 for r in records]
        atomic_write_text(args.export, "".join(line + "\n" for line in lines))
        out["exported"] = {"path": str(args.export), "records": len(lines)}
    out["tokenizer"] = None if tok is None else f"vocab {tok.vocab_size}"
    return out


def print_report(r: dict, color: bool) -> None:
    head = lambda s: print(paint(s, "1", color))  # noqa: E731
    red = lambda lines: [print(paint(f"  {p}", "31", color)) for p in lines]  # noqa: E731
    head(f"{r['data']} ({r['kind']}): {r['records']:,} records inspected")
    if r["kind"] == "parquet":
        print(f"  {r['files']} file(s), {r['row_groups']:,} row group(s), {r['rows_in_files']:,} rows in the files; "
              f"{r['chars_total']:,} chars inspected, {r['chars_mean']:,.0f} per document")
    else:
        print(f"  {r['lines']:,} lines ({r['bad_lines']} bad, {r['blank_lines']} blank); roles {r['roles']}; "
              f"{r['with_system']} with a system message; {r['assistant_turns_mean']:.2f} assistant turns each")
        print(f"  tool use: {r['tool_calls']} call(s), {r['tool_outputs']} output(s), "
              f"in {r['conversations_with_tools']} conversation(s)")
    if r.get("unusable_files"):
        head(f"\n{len(r['unusable_files'])} file(s) cannot be used for training:")
        red(r["unusable_files"])
    for s in r["samples"]:
        head(f"\n-- sample: {s['where']}")
        print(s["rendered"])
    if "problems" in r:
        head(f"\nvalidation: {len(r['problems'])} problem(s)")
        red(r["problems"])
    if "lengths" in r:
        L = r["lengths"]
        head(f"\nlengths ({L['unit']})")
        if L["count"]:
            print(f"  p50 {L['p50']:,.0f}  p90 {L['p90']:,.0f}  p99 {L['p99']:,.0f}  mean {L['mean']:,.1f}  "
                  f"max {L['max']:,}  total {L['total']:,}")
            print(f"  over max_seq_len {L['max_seq_len']:,}: {L['over_max_seq_len']:.1%}")
    if "duplicates" in r:
        d = r["duplicates"]
        head(f"\nduplicates: {len(d['exact_groups'])} exact group(s) ({d['exact_extra_copies']} extra copies), "
             f"{len(d['near_pairs'])} near pair(s) at Jaccard >= {d['near_threshold']}")
        for g in d["exact_groups"][:10]:
            print("  exact: " + " = ".join(g))
        for a, b, s in d["near_pairs"][:10]:
            print(f"  near ({s:.2f}): {a} ~ {b}")
    if "exported" in r:
        print(f"\nexported {r['exported']['records']:,} record(s) to {r['exported']['path']}")
    if r["tokenizer"] is None:
        print("\n(no tokenizer found: lengths are in characters, chat samples are plain; pass --tokenizer DIR)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(None if argv is None else [str(a) for a in argv])
    report: dict = {}

    def go() -> None:
        report.update(inspect(args))
        if args.json:
            print(json.dumps(report, ensure_ascii=False))
        else:
            print_report(report, use_color(sys.stdout, args.color))

    return run_command(go) or int(bool(report.get("unusable_files") or report.get("problems")))


if __name__ == "__main__":
    sys.exit(main())
