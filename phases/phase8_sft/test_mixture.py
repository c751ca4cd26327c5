"""Phase 8 checkpoint: mixture specs, and the hub datasets turned into our conversations."""
from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from phases.common.console import UserError

pytestmark = pytest.mark.phase8

# The first row of GSM8K's train split, as the Hub's parquet export holds it.
GSM8K_ROW = {"question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in "
                         "May. How many clips did Natalia sell altogether in April and May?",
             "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips "
                       "altogether in April and May.\n#### 72"}
SMOLTALK_ROWS = [
    {"messages": [{"content": "You are a poet.", "role": "system"}, {"content": "A haiku on rain?", "role": "user"},
                  {"content": "Soft rain on the roof", "role": "assistant"}], "source": "smol-rewrite"},
    {"messages": [{"content": "Hi", "role": "user"}, {"content": "Hello", "role": "user"}], "source": "broken"},
    {"messages": [{"content": "2+2?", "role": "user"}, {"content": "4", "role": "assistant"},
                  {"content": "And 3+3?", "role": "user"}, {"content": "6", "role": "assistant"}], "source": "x"},
]
MMLU_AUX_ROW = {"train": {"question": "Which gas do plants take in?", "subject": "",
                          "choices": ["oxygen", "carbon dioxide", "helium", "neon"], "answer": 1}}


@pytest.mark.parametrize("spec, expected", [
    ("arithmetic:3000, identity:200*2", [("arithmetic", 3000, 1), ("identity", 200, 2)]),
    ("smoltalk, mmlu_aux*3, gsm8k*4", [("smoltalk", None, 1), ("mmlu_aux", None, 3), ("gsm8k", None, 4)]),
    ("mine.jsonl*2", [("mine.jsonl", None, 2)]),
])
def test_parse_spec(mixture, spec, expected):
    assert [(e.name, e.count, e.epochs) for e in mixture.parse_spec(spec)] == expected


@pytest.mark.parametrize("spec, problem", [("", "empty"), ("poetry:10", "unknown task"), ("arithmetic:x", "expected"),
                                           ("arithmetic:0", ">= 1"), ("identity*0", ">= 1")])   # 0 read as the default
def test_bad_specs_are_user_errors(mixture, spec, problem):
    with pytest.raises(UserError, match=problem):
        mixture.parse_spec(spec)


def test_a_mixture_too_large_to_list_is_refused_before_generating(mixture):
    """Issue 15 re-attack: "arithmetic:99999999999999999999" generated problems until killed."""
    with pytest.raises(UserError, match="needs about .* more than half of this machine"):
        mixture.build("arithmetic:99999999999999999999")


def test_the_memory_check_counts_the_generated_conversations(mixture):
    """Review find: the check counted the index (100 bytes an entry) but not the conversations the
    offline tasks generate first (each many times an index entry), so a count far too large passed."""
    from phases.phase1_transformer.memory import device_memory
    from phases.phase7_eval import tasks
    have = device_memory("cpu")
    if have is None:
        pytest.skip("this machine does not report its memory")
    count = int(have / 2 / tasks.CONVERSATION_BYTES) + 1      # the index alone would fit 20x over
    assert count * tasks.INDEX_BYTES < have / 2
    with pytest.raises(UserError, match=f"{count:,} conversations .{count:,} generated. needs about"):
        mixture.build(f"arithmetic:{count}")


def test_offline_mixture_counts_epochs_and_held_out_split(mixture):
    train = mixture.build("arithmetic:50, identity:10*2")
    assert train.counts() == {"arithmetic": 50, "identity": 20} and len(train) == 70
    test = mixture.build("arithmetic:50, identity:10*2", "test", per_task=5)
    assert test.counts() == {"arithmetic": 5, "identity": 5}
    train_q = {c["messages"][0]["content"] for c in train}
    assert not {c["messages"][0]["content"] for c in test if "answer" in c} & train_q


def test_files_join_the_mixture_and_are_scored_like_gsm8k(mixture, tmp_path):
    f = tmp_path / "mine.jsonl"
    f.write_text('{"messages": [{"role": "user", "content": "6*7?"}, {"role": "assistant", "content": "#### 42"}], '
                 '"answer": "42"}\n')
    mix = mixture.build(f"arithmetic:10, {f}*3")
    assert mix.counts()["mine.jsonl"] == 3
    k = next(k for k in range(len(mix)) if mix.source(k)[0] == "mine.jsonl")
    assert mixture.reward(mix, k, "<|python_start|>6*7<|python_end|>#### 42") == 1.0
    assert mixture.reward(mix, k, "#### 41") == 0.0


def test_gsm8k_annotations_become_calculator_calls(mixture):
    from phases.phase6_inference.calculator import calculate
    from phases.phase7_eval.chat_tasks import GSM8K
    conv = GSM8K([GSM8K_ROW])[0]
    parts = conv["messages"][1]["content"]
    assert [p["type"] for p in parts] == ["text", "python", "python_output", "text", "python", "python_output", "text"]
    assert parts[0]["text"] == "Natalia sold 48/2 = " and parts[1:3] == [
        {"type": "python", "text": "48/2"}, {"type": "python_output", "text": "24"}]
    assert parts[-1]["text"].endswith("#### 72") and conv["reference"] == "72"
    for call, output in zip(parts[1::3], parts[2::3]):
        assert calculate(call["text"]) == output["text"]              # what the engine will force
    from phases.phase8_sft.conversations import check_conversation
    check_conversation(conv)


def test_smoltalk_keeps_the_conversations_our_format_accepts(mixture):
    task = mixture.SmolTalk(SMOLTALK_ROWS)
    assert len(task) == 2 and task.skipped == 1
    assert task[0]["messages"][0]["role"] == "system" and task[1]["messages"][-1]["content"] == "6"


def _parquet(rows):
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    return buf.getvalue()


def test_hub_tasks_download_through_phase7_and_phase5(mixture, tmp_path, monkeypatch):
    """The real download path (listing, fetch_one, manifest) against a stand-in Hub on 127.0.0.1."""
    from phases.phase7_eval.conftest import StandIn
    monkeypatch.setenv("MINI_NANOCHAT_BASE_DIR", str(tmp_path))
    hub = StandIn()
    try:
        for name, rows in (("cais/mmlu/parquet/auxiliary_train/train", [MMLU_AUX_ROW]),
                           ("HuggingFaceTB/smol-smoltalk/parquet/default/train", SMOLTALK_ROWS)):
            hub.files[f"/api/datasets/{name}"] = f'["{hub.url}/files/{name}/0.parquet"]'.encode()
            hub.files[f"/files/{name}/0.parquet"] = _parquet(rows)
        mmlu = mixture.parquet_rows("cais/mmlu", "auxiliary_train", "train",
                                    show_progress=False, endpoint=hub.url)
        assert mmlu == [MMLU_AUX_ROW]
        monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", hub.url)
        task = mixture.hub_task("mmlu_aux", "train", show_progress=False)
        conv = task[0]
        assert conv["messages"][1]["content"] == "B" and conv["letters"] == ["A", "B", "C", "D"]
        assert "- carbon dioxide=B" in conv["messages"][0]["content"]
        assert len(mixture.hub_task("smoltalk", "train", show_progress=False)) == 2
    finally:
        hub.stop()
    again = mixture.parquet_rows("cais/mmlu", "auxiliary_train", "train", show_progress=False,
                                 endpoint="http://127.0.0.1:9")       # cached: no network needed
    assert again == [MMLU_AUX_ROW]
