"""The quizzes (``mini-nanochat quiz N``): every phase's file is valid, every computed answer is
recomputed from the code (so a quiz cannot go on teaching a fact that stopped being true), every
"read more" link exists, and the command checks answers, explains them and refuses bad input."""
from __future__ import annotations

import io
import math
import re
import shlex

import pytest

from mini_nanochat import quiz
from mini_nanochat.cli import main
from phases.common.console import UserError

PHASES = range(10)
QUIZZES = {n: quiz.load(n) for n in PHASES}
ALL = [(n, q) for n in PHASES for q in QUIZZES[n].questions]


def _right(q: quiz.Question) -> str:
    """An answer as a learner would type it."""
    if q.kind == "number":
        return f"{q.answer:g}" if not float(q.answer).is_integer() else f"{int(q.answer):,}"
    return q.answer if q.kind == "choice" else q.answer[0]


def _wrong(q: quiz.Question) -> str:
    if q.kind == "choice":
        return next(letter for letter in quiz.LETTERS[:len(q.choices)] if letter != q.answer)
    return str(q.answer + 10 * q.tolerance + 1) if q.kind == "number" else "certainly not this"


# -- recomputing the computed answers ---------------------------------------------------------

def _command_in(q: quiz.Question) -> list[str]:
    """The `mini-nanochat ...` command a question tells the learner to run."""
    m = re.search(r"`mini-nanochat ([^`]+)`", q.ask)
    assert m, f"{q.id}: names no command"
    return shlex.split(m.group(1))


def _run_and_read(q: quiz.Question, capsys, pattern: str) -> float:
    """Run the question's own command and read the figure the answer is about from its output."""
    capsys.readouterr()
    assert main(_command_in(q)) == 0
    out = capsys.readouterr().out
    m = re.search(pattern, out)
    assert m, f"{q.id}: {pattern!r} not in the output of {_command_in(q)}"
    return float(m.group(1).replace(",", ""))


def _cpu_demo_schedule(q: quiz.Question, step: int) -> float:
    from phases.phase2_training.schedule import phase_of
    from phases.phase5_data.pretrain import load_config
    cfg = load_config("examples/cpu_demo.toml")
    # the question states the schedule's settings: they must be the config's
    assert f"{cfg.num_iterations} steps" in q.ask and str(cfg.final_lr_frac) in q.ask
    if "warmup_steps" in q.ask:
        for key in ("warmup_steps", "warmdown_ratio", "final_lr_frac"):
            assert f"{key} = {getattr(cfg, key)}" in q.ask.replace("\n", " "), key
        assert f"lr_multiplier({step}, {cfg.num_iterations}, {cfg.warmup_steps}, {cfg.warmdown_ratio}, " \
               f"{cfg.final_lr_frac})" in q.ask
    return phase_of(step, cfg)["multiplier"]


def _d20_kv_bytes(q, capsys) -> float:
    import torch
    from phases.phase1_transformer.config import preset
    from phases.phase6_inference.kv_cache import KVCache
    c = preset("d20")
    assert (c.n_layer, c.n_kv_head, c.head_dim) == (20, 10, 128)   # as the question states
    cache = KVCache(c.n_layer, 1, 1, c.n_kv_head, c.head_dim, dtype=torch.bfloat16, device="meta")
    return cache.bytes_per_token()


def _group_advantage(q, capsys) -> float:
    import torch
    from phases.phase8_sft.grpo import advantages
    return advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0]]))[0, 0].item()


def _queue_default(q, capsys) -> float:
    import argparse
    from phases.phase9_serving import serve
    parser = argparse.ArgumentParser()
    serve.add_arguments(parser)
    assert "mini-nanochat serve --help" in q.ask
    return parser.parse_args([]).max_queue


def _merges(q, capsys) -> float:
    from phases.phase0_tokenizer.bpe import SPECIAL_TOKENS
    assert f"{len(SPECIAL_TOKENS)} special tokens" in q.explain
    return 8192 - 256 - len(SPECIAL_TOKENS)


def _digit_chunks(q, capsys) -> float:
    import regex
    from phases.phase0_tokenizer.bpe import SPLIT_PATTERN
    return len(regex.findall(SPLIT_PATTERN, "12345"))


def _d20_width(q, capsys) -> float:
    from phases.phase1_transformer.config import preset
    return preset("d20").n_embd


def _centered(q, capsys) -> float:
    from phases.phase7_eval.core import centered
    return centered(0.5, 0.25)


def _rank_row_groups(q, capsys) -> float:
    """Phase 5's DocumentStream on a real split of 10 one-document row groups, 4 ranks: rank 3's share."""
    import tempfile
    from pathlib import Path
    from phases.phase0_tokenizer.shards import shard_name, write_shard
    from phases.phase5_data.stream import DocumentStream
    assert "10 parquet row groups" in q.ask and "W = 4 ranks" in q.ask and "rank 3" in q.ask
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(tmp) / shard_name(i) for i in range(2)]
        for i, path in enumerate(paths):                 # 2 files x 5 row groups of 1 document
            write_shard(path, [f"document {i}-{k}" for k in range(5)], row_group_size=1)
        return len(DocumentStream(paths, rank=3, world_size=4).units)


RECOMPUTE = {  # (phase, question id) -> the answer, from the code
    (0, "merges-for-8192"): _merges,
    (0, "digits-split"): _digit_chunks,
    (1, "demo-parameters"): lambda q, c: _run_and_read(q, c, r"parameters\s+([\d,]+)"),
    (1, "d20-width"): _d20_width,
    (2, "lr-warmup-step-10"): lambda q, c: _cpu_demo_schedule(q, 10),
    (2, "lr-warmdown-step-200"): lambda q, c: _cpu_demo_schedule(q, 200),
    (3, "demo-lr-batch-scale"): lambda q, c: _run_and_read(q, c, r"LR batch scale\s+sqrt\(B/B_ref\) = ([\d.]+)"),
    (3, "d20-auto-batch"): lambda q, c: _run_and_read(q, c, r"total batch\s+([\d,]+) tokens/step"),
    (4, "d20-accumulation"): lambda q, c: _run_and_read(q, c, r"ranks x (\d+) accumulation"),
    (5, "row-groups-per-rank"): _rank_row_groups,
    (6, "d20-kv-bytes"): _d20_kv_bytes,
    (7, "centered-accuracy"): _centered,
    (8, "group-advantage"): _group_advantage,
    (9, "queue-default"): _queue_default,
}
COMPUTED = [(n, q) for n, q in ALL if q.computed]


def test_every_computed_question_has_a_recomputation_and_back():
    assert {(n, q.id) for n, q in COMPUTED} == set(RECOMPUTE)


@pytest.mark.parametrize("phase, question", COMPUTED, ids=[f"{n}-{q.id}" for n, q in COMPUTED])
def test_computed_answer_is_what_the_code_computes(phase, question, capsys):
    value = RECOMPUTE[(phase, question.id)](question, capsys)
    assert math.isclose(value, question.answer, abs_tol=question.tolerance + 1e-9), \
        f"phase {phase} {question.id}: the quiz says {question.answer}, the code gives {value}"


def test_facts_behind_choice_questions_still_hold():
    """Choice answers that rest on a behaviour of the code, checked against it."""
    from phases.phase6_inference.calculator import calculate
    assert calculate('__import__("os").system("ls")') is None and calculate("10**100000") is None
    assert calculate("48/2") is not None
    rl = quiz.tomllib.loads(open("examples/cpu_rl.toml", encoding="utf-8").read())
    assert rl["objective"]["scale_rewards"] == "none" and rl["objective"]["beta"] == 0.0
    assert rl["objective"]["normalise"] == "token" and rl["objective"]["updates_per_batch"] == 1


# -- the files -----------------------------------------------------------------------------------

def _slug(heading: str) -> str:
    """Python-Markdown's toc slug: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\s-]", "", heading.strip().lower())
    return re.sub(r"[-\s]+", "-", text).strip("-")


def test_every_phase_has_a_quiz_of_a_few_questions():
    assert sorted(quiz.quiz_files()) == list(PHASES)
    for n in PHASES:
        assert 3 <= len(QUIZZES[n].questions) <= 8, f"phase {n}"
        assert QUIZZES[n].folder.name.startswith(f"phase{n}_")


@pytest.mark.parametrize("phase, question", ALL, ids=[f"{n}-{q.id}" for n, q in ALL])
def test_read_more_points_at_a_real_section(phase, question):
    name, _, anchor = question.see.partition("#")
    page = QUIZZES[phase].folder / name
    assert page.is_file(), f"{question.id}: {page} does not exist"
    headings = [line.lstrip("#") for line in page.read_text(encoding="utf-8").splitlines()
                if line.startswith("## ") or line.startswith("### ")]
    assert anchor in {_slug(h) for h in headings}, f"{question.id}: no section #{anchor} in {page.name}"


@pytest.mark.parametrize("phase", PHASES)
def test_right_answers_score_full_marks_and_wrong_ones_none(phase):
    qz = QUIZZES[phase]
    out = io.StringIO()
    assert quiz.ask(qz, [_right(q) for q in qz.questions], out=out) == (len(qz.questions),) * 2
    assert out.getvalue().count("-> right") == len(qz.questions)
    out = io.StringIO()
    assert quiz.ask(qz, [_wrong(q) for q in qz.questions], out=out) == (0, len(qz.questions))
    text = out.getvalue()
    for q in qz.questions:   # the right answer and the explanation follow every wrong answer
        assert f"the answer is {q.shown_answer()}" in text and q.explain in text


def test_malformed_quiz_files_name_their_problem(tmp_path, monkeypatch):
    folder = tmp_path / "phase3_x"
    folder.mkdir()
    monkeypatch.setattr(quiz, "PHASES_DIR", tmp_path)
    cases = {
        "[[question]]\nid = 'a'\nkind = 'choice'\nask = 'q'\nexplain = 'e'\nsee = 's'\nchoices = ['x']\nanswer = 'a'":
            "needs 2-8 choices",
        "[[question]]\nid = 'a'\nkind = 'number'\nask = 'q'\nexplain = 'e'\nsee = 's'\nanswer = 'ten'":
            "numeric answer",
        "[[question]]\nid = 'a'\nkind = 'essay'\nask = 'q'\nexplain = 'e'\nsee = 's'": "kind must be",
        "[[question]]\nid = 'a'\nkind = 'text'\nask = 'q'\nsee = 's'\nanswer = 'x'": "'explain' is missing",
        "[[question]]\nid = 'a'\nkind = 'text'\nask = 'q'\nexplain = 'e'\nsee = 's'\nanswer = 'x'\nhint = 1":
            "unknown keys",
        "title = 'no questions'": "no [[question]]",
        "[[question]\n": "quiz.toml",
    }
    for text, message in cases.items():
        (folder / "quiz.toml").write_text(text)
        with pytest.raises(ValueError, match=re.escape(message)):
            quiz.load(3)
    with pytest.raises(UserError, match="no quiz for phase 4"):
        quiz.load(4)


# -- answering -----------------------------------------------------------------------------------

def test_numbers_are_read_as_people_write_them():
    q = QUIZZES[1].questions[0]
    assert q.kind == "number"
    for text in ("7,340,058", "7_340_058", "7340058", " 7.340058e6 "):
        assert q.is_right(q.parse(text)), text
    for text in ("", "seven", "nan", "inf"):
        with pytest.raises(ValueError):
            q.parse(text)
    text_q = next(q for q in QUIZZES[4].questions if q.kind == "text")
    assert text_q.is_right(text_q.parse("  local_rank ")) and not text_q.is_right(text_q.parse("rank"))


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_piped_answers_and_end_of_input():
    qz = QUIZZES[2]
    out = io.StringIO()
    right, asked = quiz.ask(qz, stdin=io.StringIO(f"{_right(qz.questions[0])}\n"), out=out)
    assert (right, asked) == (1, 1)
    assert "stopped after 1 of 4" in out.getvalue() and "score: 1/1 (3 not answered)" in out.getvalue()
    with pytest.raises(UserError, match="answer 1"):      # piped junk cannot be asked again
        quiz.ask(qz, stdin=io.StringIO("junk\n"), out=io.StringIO())


def test_a_typo_at_the_terminal_is_asked_again():
    qz = QUIZZES[3]
    first = qz.questions[0]
    out = io.StringIO()
    assert quiz.ask(qz, stdin=_Terminal(f"z\n{first.answer}\n"), out=out) == (1, 1)
    assert "answer with one letter: a, b, c, d; try again" in out.getvalue()


def test_the_command(capsys):
    qz = QUIZZES[6]
    answers = [_right(q) for q in qz.questions]
    assert main(["quiz", "6", "--answers", *answers]) == 0
    out = capsys.readouterr().out
    assert f"score: {len(answers)}/{len(answers)}" in out and "read more: phases/phase6_inference/README.md#" in out
    assert main(["quiz", "--list"]) == 0
    listing = capsys.readouterr().out
    assert all(f"phase {n}  " in listing for n in PHASES)
    assert main(["quiz", "6", "--list"]) == 0
    assert "[d20-kv-bytes] (number)" in capsys.readouterr().out
    assert main(["quiz", "6", "--reveal"]) == 0
    revealed = capsys.readouterr().out
    assert "answer: 102,400  (recomputed from the code by the tests)" in revealed
    with pytest.raises(SystemExit) as e:
        main(["quiz", "--help"])
    assert e.value.code == 0 and "--answers" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["quiz"], "which phase?"),
    (["quiz", "12"], "phases are numbered 0-9"),
    (["quiz", "2", "--answers", "b"], "has 4 questions but 1 answers"),
    (["quiz", "2", "--answers", "b", "0.43", "b", "8"], "answer 1 (lr-warmup-step-10): 'b' is not a number"),
    (["quiz", "2", "--reveal", "--list"], "choose one of"),
])
def test_bad_input_is_one_error_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def _doc_transcripts() -> list[tuple[str, str]]:
    """(command, output) for every `$ mini-nanochat quiz …` shown in a text block of docs/start/quizzes.md."""
    page = (quiz.PHASES_DIR.parent / "docs" / "start" / "quizzes.md").read_text(encoding="utf-8")
    found = []
    for block in re.findall(r"```text\n(.*?)```", page, flags=re.S):
        for part in re.split(r"^\$ ", block, flags=re.M)[1:]:
            command, _, output = part.partition("\n")
            found.append((command, output))
    return found


@pytest.mark.parametrize("command, expected", _doc_transcripts(), ids=lambda v: v if v.startswith("mini") else "")
def test_the_docs_page_shows_real_output(command, expected, capsys):
    """The transcripts in docs/start/quizzes.md are what the commands print today."""
    assert command.startswith("mini-nanochat quiz")
    main(shlex.split(command)[1:])
    captured = capsys.readouterr()
    assert captured.out + captured.err == expected


def test_the_docs_page_has_transcripts():
    assert len(_doc_transcripts()) >= 4
