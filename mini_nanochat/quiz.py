"""``mini-nanochat quiz N``: a few questions on phase N, answers checked, explained after each.

    mini-nanochat quiz --list                      # the phases that have a quiz, and how many questions
    mini-nanochat quiz 2                           # ask Phase 2's questions one by one
    mini-nanochat quiz 2 --answers b 0.43 c d      # answer them all at once (scripts, tests)
    printf 'b\\n0.43\\n' | mini-nanochat quiz 2     # or one answer a line on standard input
    mini-nanochat quiz 2 --reveal                  # every question with its answer and why

The questions live next to the lesson they come from, one file a phase:
``phases/phaseN_*/quiz.toml``; this module is their one reader. A question is one of

- ``choice``: ``choices = [...]``, ``answer = "b"`` (the letter of the right choice);
- ``number``: ``answer = 0.43``, ``tolerance = 0.005`` (absolute; default: exact). The learner
  may write ``11_534_466``, ``11,534,466`` or ``3.6e6``;
- ``text``: ``answer = ["gloo", ...]``, any of which is right (case and spaces ignored).

Every question has ``id``, ``ask``, ``explain`` and ``see`` (the lesson section it comes from).
A question whose answer is a fact the code computes (a parameter count, a learning rate at a
step) says ``computed = true``: tests/test_quiz.py recomputes the answer from the code, so the
quiz fails its test instead of teaching something that stopped being true.

It lives in ``mini_nanochat`` and not in a phase because it reads every phase's file.
What it leaves out: scores kept between runs, shuffled order (answers given with ``--answers``
would stop lining up).
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from phases.common.console import UserError, paint, use_color

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

PHASES_DIR = Path(__file__).resolve().parents[1] / "phases"
FILENAME = "quiz.toml"
KINDS = ("choice", "number", "text")
LETTERS = "abcdefgh"


@dataclass(frozen=True)
class Question:
    id: str
    kind: str
    ask: str
    answer: object            # a letter (choice), a float (number), a tuple of accepted strings (text)
    explain: str
    see: str
    choices: tuple[str, ...] = ()
    tolerance: float = 0.0
    computed: bool = False

    def shown_answer(self) -> str:
        """The right answer as the learner would write it."""
        if self.kind == "choice":
            return f"{self.answer}) {self.choices[LETTERS.index(self.answer)]}"
        if self.kind == "number":
            value = f"{int(self.answer):,}" if float(self.answer).is_integer() else f"{self.answer:g}"
            return value + (f" (± {self.tolerance:g})" if self.tolerance else "")
        return self.answer[0]

    def parse(self, text: str):
        """The learner's answer in this question's terms; ``ValueError`` (why) if it cannot be one."""
        text = text.strip()
        if not text:
            raise ValueError("empty answer")
        if self.kind == "choice":
            letter = text.lower().rstrip(")")
            valid = LETTERS[:len(self.choices)]
            if len(letter) != 1 or letter not in valid:
                raise ValueError(f"answer with one letter: {', '.join(valid)}")
            return letter
        if self.kind == "number":
            try:
                value = float(text.replace(",", "").replace("_", ""))
            except ValueError:
                raise ValueError(f"{text!r} is not a number") from None
            if not math.isfinite(value):
                raise ValueError(f"{text!r} is not a finite number")
            return value
        return " ".join(text.lower().split())

    def is_right(self, parsed) -> bool:
        if self.kind == "number":
            return abs(parsed - self.answer) <= self.tolerance + 1e-12 * abs(self.answer)
        if self.kind == "text":
            return parsed in {" ".join(a.lower().split()) for a in self.answer}
        return parsed == self.answer


@dataclass(frozen=True)
class Quiz:
    phase: int
    folder: Path
    title: str
    questions: tuple[Question, ...]


def _question(raw: dict, where: str) -> Question:
    """One ``[[question]]`` table, checked: a malformed file names its problem and place."""
    def need(key, kind):
        if not isinstance(raw.get(key), kind):
            raise ValueError(f"{where}: '{key}' is missing or not a {kind.__name__}")
        return raw[key]
    unknown = set(raw) - {"id", "kind", "ask", "answer", "explain", "see", "choices", "tolerance", "computed"}
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    qid, kind = need("id", str), need("kind", str)
    where = f"{where} ({qid})"
    if kind not in KINDS:
        raise ValueError(f"{where}: kind must be one of {KINDS}, not {kind!r}")
    common = dict(id=qid, kind=kind, ask=need("ask", str).strip(), explain=need("explain", str).strip(),
                  see=need("see", str), computed=bool(raw.get("computed", False)))
    if kind == "choice":
        choices = tuple(need("choices", list))
        answer = need("answer", str).lower()
        if not 2 <= len(choices) <= len(LETTERS) or answer not in LETTERS[:len(choices)]:
            raise ValueError(f"{where}: needs 2-{len(LETTERS)} choices and an answer letter among them")
        return Question(**common, answer=answer, choices=choices)
    if kind == "number":
        answer = raw.get("answer")
        if isinstance(answer, bool) or not isinstance(answer, (int, float)):
            raise ValueError(f"{where}: a number question needs a numeric answer")
        return Question(**common, answer=float(answer), tolerance=float(raw.get("tolerance", 0.0)))
    answers = raw.get("answer")
    answers = [answers] if isinstance(answers, str) else answers
    if not answers or not all(isinstance(a, str) for a in answers):
        raise ValueError(f"{where}: a text question needs an answer string or a list of them")
    return Question(**common, answer=tuple(answers))


def quiz_files() -> dict[int, Path]:
    """{phase number: its quiz.toml} for every phase that has one."""
    found = {}
    for path in sorted(PHASES_DIR.glob(f"phase*_*/{FILENAME}")):
        found[int(path.parent.name[len("phase"):].split("_")[0])] = path
    return found


def load(phase: int) -> Quiz:
    """Phase ``phase``'s quiz; ``UserError`` if there is no such phase or quiz."""
    files = quiz_files()
    if phase not in files:
        have = ", ".join(map(str, sorted(files))) or "none"
        raise UserError(f"no quiz for phase {phase}; quizzes exist for phases {have} (mini-nanochat quiz --list)")
    path = files[phase]
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: {e}") from None
    raw = data.get("question")
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{path}: no [[question]] tables")
    questions = tuple(_question(q, f"{path.name} question {i + 1}") for i, q in enumerate(raw))
    ids = [q.id for q in questions]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: question ids repeat")
    return Quiz(phase, path.parent, str(data.get("title", path.parent.name)), questions)


# -- asking -------------------------------------------------------------------------------------

def _show_question(q: Question, k: int, n: int, out) -> None:
    print(f"\nQuestion {k}/{n}  [{q.id}]", file=out)
    print(q.ask, file=out)
    for letter, choice in zip(LETTERS, q.choices):
        print(f"  {letter}) {choice}", file=out)
    hint = {"choice": "one letter", "number": "a number", "text": "a word or two"}[q.kind]
    print(f"({hint})", file=out)


def _verdict(q: Question, right: bool, quiz: Quiz, color: bool, out) -> None:
    mark = paint("right", "1;32", color) if right else paint("wrong", "1;31", color)
    print(f"-> {mark}" + ("" if right else f"; the answer is {q.shown_answer()}"), file=out)
    print(q.explain, file=out)
    print(f"(read more: {quiz.folder.relative_to(PHASES_DIR.parent) / q.see})", file=out)


def ask(quiz: Quiz, answers: list[str] | None = None, stdin=None, out=None, color: bool = False) -> tuple[int, int]:
    """Ask every question; return (right, asked). ``answers``: given up front, else read a line each.

    A given answer that cannot be an answer to its question is a ``UserError``; one typed at the
    prompt is asked again. End of input stops the quiz with the score so far.
    """
    out, stdin = out or sys.stdout, stdin or sys.stdin
    n = len(quiz.questions)
    if answers is not None and len(answers) != n:
        raise UserError(f"phase {quiz.phase}'s quiz has {n} questions but {len(answers)} answers were given")
    if answers is not None:                        # check them all before asking anything
        for k, (q, text) in enumerate(zip(quiz.questions, answers), 1):
            try:
                q.parse(text)
            except ValueError as e:
                raise UserError(f"answer {k} ({q.id}): {e}") from None
    interactive = answers is None and stdin.isatty()
    print(paint(f"Phase {quiz.phase} quiz: {quiz.title} ({n} questions)", "1", color), file=out)
    right = asked = 0
    for k, q in enumerate(quiz.questions, 1):
        _show_question(q, k, n, out)
        while True:
            if answers is not None:
                text = answers[k - 1]
                print(f"your answer: {text}", file=out)
            else:
                print("your answer: ", end="", file=out, flush=True)
                text = stdin.readline()
                if not text:                       # end of input: stop here
                    print(f"\n(no more answers: stopped after {asked} of {n})", file=out)
                    return _score(right, asked, n, out)
                if not interactive:
                    print(text.strip(), file=out)  # echo piped answers so the transcript reads well
            try:
                parsed = q.parse(text)
                break
            except ValueError as e:
                if not interactive:
                    raise UserError(f"answer {k} ({q.id}): {e}") from None
                print(f"  ({e}; try again)", file=out)
        ok = q.is_right(parsed)
        right, asked = right + ok, asked + 1
        _verdict(q, ok, quiz, color, out)
    return _score(right, asked, n, out)


def _score(right: int, asked: int, n: int, out) -> tuple[int, int]:
    print(f"\nscore: {right}/{asked}" + ("" if asked == n else f" ({n - asked} not answered)"), file=out)
    return right, asked


def reveal(quiz: Quiz, out=None) -> None:
    """Every question with its answer and explanation (to review, or to write a quiz of your own)."""
    out = out or sys.stdout
    print(f"Phase {quiz.phase} quiz: {quiz.title} ({len(quiz.questions)} questions)", file=out)
    for k, q in enumerate(quiz.questions, 1):
        _show_question(q, k, len(quiz.questions), out)
        print(f"answer: {q.shown_answer()}" + ("  (recomputed from the code by the tests)" if q.computed else ""),
              file=out)
        print(q.explain, file=out)


def list_quizzes(out=None) -> None:
    out = out or sys.stdout
    for phase, _ in sorted(quiz_files().items()):
        quiz = load(phase)
        computed = sum(q.computed for q in quiz.questions)
        print(f"phase {phase}  {len(quiz.questions)} questions ({computed} checked against the code)  {quiz.title}",
              file=out)
    print("\nmini-nanochat quiz N   asks phase N's questions", file=out)


# -- the command --------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("phase", nargs="?", type=int, help="the phase to be quizzed on (0-9)")
    parser.add_argument("--list", action="store_true", help="list the quizzes (or, with a phase, its questions)")
    parser.add_argument("--answers", nargs="+", metavar="ANSWER",
                        help="all answers at once, one per question in order (a letter, a number or a word; "
                             "quote an answer with spaces)")
    parser.add_argument("--reveal", action="store_true", help="print every question with its answer and why")
    parser.add_argument("--no-color", action="store_true", help="no colours (NO_COLOR is honoured too)")


def run(args: argparse.Namespace) -> tuple[int, int] | None:
    if args.phase is None:
        if args.list:
            return list_quizzes()
        raise UserError("which phase? e.g. mini-nanochat quiz 2 (mini-nanochat quiz --list shows them all)")
    if not 0 <= args.phase <= 9:
        raise UserError(f"phases are numbered 0-9, not {args.phase}")
    if sum(map(bool, (args.list, args.reveal, args.answers))) > 1:
        raise UserError("choose one of --list, --reveal and --answers")
    quiz = load(args.phase)
    if args.list:
        for k, q in enumerate(quiz.questions, 1):
            print(f"{k}. [{q.id}] ({q.kind}) {q.ask.splitlines()[0]}")
        return None
    if args.reveal:
        return reveal(quiz)
    return ask(quiz, args.answers, color=use_color(sys.stdout) and not args.no_color)


if __name__ == "__main__":
    from phases.common.console import command
    raise SystemExit(command(__doc__.split("\n\n")[0], add_arguments, run))
