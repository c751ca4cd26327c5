"""Tokenizer compression: how many bytes of text one token carries, per genre, vs rustbpe.

Compression (bytes per token, higher is better) is the number that matters for a
tokenizer: the model reads a fixed number of tokens per step, so more bytes per
token means more text seen per step and a longer effective context. We measure it on

- the validation shard of the training data (the tokenizer never saw it), and
- four short genre samples written for this project: English prose, Python code,
  LaTeX-style math and non-English text (French, German, Japanese, Chinese, Russian),
  which show where the vocabulary was spent.

and put our tokenizer side by side with one trained by rustbpe (nanochat's trainer) on
the same data at the same vocabulary size. Because both use the same merge rule, the
two columns should agree; any difference would point at a bug.

What it leaves out: GPT-2 / GPT-4 columns (their vocabularies must be downloaded,
and the project runs offline), and perplexity-based evaluation (Phase 7).

Run: ``mini-nanochat tokenizer eval`` (or ``python -m phases.phase0_tokenizer.compression``):
``add_arguments`` / ``run`` evaluate a trained tokenizer folder.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from phases.common.console import paint
from phases.phase0_tokenizer.merges import cut_long_runs, text_to_bytes

GENRES: dict[str, str] = {
    "prose": (
        "The committee met on Tuesday to discuss the budget for the coming year. After a long "
        "debate, the members agreed to increase funding for the public library, which had been "
        "closed on weekends since the spring. Several residents spoke in favour of the plan, "
        "arguing that a town without a library open on Saturdays loses more than books: it "
        "loses a place where children do homework, where older people read the newspaper, and "
        "where anyone can sit for an hour without being asked to buy something."
    ),
    "code": (
        "def moving_average(values: list[float], window: int = 3) -> list[float]:\n"
        "    \"\"\"Return the mean of each run of `window` consecutive values.\"\"\"\n"
        "    if window <= 0:\n"
        "        raise ValueError(f\"window must be positive, got {window}\")\n"
        "    out = []\n"
        "    total = sum(values[:window])\n"
        "    for i in range(window, len(values) + 1):\n"
        "        out.append(total / window)\n"
        "        if i < len(values):\n"
        "            total += values[i] - values[i - window]\n"
        "    return out\n\n"
        "class Counter(dict):\n"
        "    def add(self, key, n=1):\n"
        "        self[key] = self.get(key, 0) + n\n"
    ),
    "math": (
        r"Let $f(x) = \sum_{k=0}^{\infty} \frac{x^k}{k!}$. Then $f'(x) = f(x)$ and $f(0) = 1$, "
        r"so $f(x) = e^x$. For the softmax $p_i = \frac{e^{z_i}}{\sum_j e^{z_j}}$ the gradient of "
        r"the cross-entropy $L = -\log p_y$ is $\partial L / \partial z_i = p_i - \mathbb{1}[i = y]$. "
        r"Solve $3x^2 - 12x + 9 = 0$: $x = \frac{12 \pm \sqrt{144 - 108}}{6} = 1$ or $3$. "
        r"The integral $\int_0^1 x^{2} \, dx = 1/3 \approx 0.333$."
    ),
    "non-English": (
        "Le comité s'est réuni mardi pour discuter du budget de l'année prochaine. "
        "Die Bibliothek bleibt am Wochenende geschlossen, was viele Bürger bedauern. "
        "図書館は週末も開館すべきだと多くの住民が述べた。"
        "委员会周二开会讨论明年的预算。"
        "Комитет собрался во вторник, чтобы обсудить бюджет на следующий год."
    ),
}


@dataclass
class Row:
    name: str
    num_bytes: int
    ours: int                    # tokens from our tokenizer
    ref: int | None = None       # tokens from the rustbpe-trained tokenizer

    @property
    def ours_bpt(self) -> float:
        return self.num_bytes / max(1, self.ours)

    @property
    def ref_bpt(self) -> float | None:
        return None if self.ref is None else self.num_bytes / max(1, self.ref)


@dataclass
class EvalReport:
    vocab_size: int
    rows: list[Row] = field(default_factory=list)
    ref_note: str = ""
    ref_train_s: float | None = None


def _count(encode: Callable[[str], Sequence[int]], texts: Iterable[str]) -> tuple[int, int]:
    nbytes = ntok = 0
    for t in texts:
        nbytes += len(text_to_bytes(t))
        ntok += len(encode(t))
    return nbytes, ntok


def train_rustbpe(texts: Iterable[str], vocab_size: int, pattern: str, num_special: int = 9):
    """A rustbpe tokenizer trained like ours (its vocab_size excludes the special tokens)."""
    import rustbpe

    ref = rustbpe.Tokenizer()
    # the pieces our trainer splits (merges.cut_long_runs): same chunks, and no regex stack overflow
    ref.train_from_iterator((p for t in texts for p in cut_long_runs(t)), vocab_size - num_special, pattern=pattern)
    return ref


def evaluate(tok, val_texts: Sequence[str], train_texts: Callable[[], Iterable[str]] | None = None,
             compare: bool = True) -> EvalReport:
    """Bytes per token on each genre and on ``val_texts``; rustbpe side by side when possible.

    ``train_texts`` re-creates the tokenizer's training texts, so rustbpe can be trained on
    exactly the same data. Without it, or without rustbpe installed, the column is empty.
    """
    report = EvalReport(vocab_size=tok.vocab_size)
    ref = None
    if compare and train_texts is not None:
        try:
            t0 = time.perf_counter()
            ref = train_rustbpe(train_texts(), tok.vocab_size, tok.pattern, len(tok.special_tokens))
            report.ref_train_s = time.perf_counter() - t0
            report.ref_note = "rustbpe trained on the same texts at the same vocab size"
        except ImportError:
            report.ref_note = "rustbpe is not installed (pip install rustbpe): no comparison column"
    elif compare:
        report.ref_note = "no training texts given: no rustbpe column"
    sets = [(name, [text]) for name, text in GENRES.items()] + [("validation shard", list(val_texts))]
    for name, texts in sets:
        nbytes, ours = _count(tok.encode_ordinary, texts)
        row = Row(name, nbytes, ours)
        if ref is not None:
            row.ref = _count(lambda t: [i for p in cut_long_runs(t) for i in ref.encode(p)], texts)[1]
        report.rows.append(row)
    return report


def format_report(report: EvalReport, color: bool = False) -> str:
    head = f"{'text':<18}{'bytes':>11}{'tokens':>10}{'bytes/token':>13}"
    has_ref = any(r.ref is not None for r in report.rows)
    if has_ref:
        head += f"{'rustbpe tok':>13}{'rustbpe b/t':>13}{'ours vs rustbpe':>17}"
    lines = [f"Tokenizer evaluation (vocab {report.vocab_size}; higher bytes/token = better compression)",
             paint(head, "1", color), "-" * len(head)]
    for r in report.rows:
        line = f"{r.name:<18}{r.num_bytes:>11,}{r.ours:>10,}{r.ours_bpt:>13.3f}"
        if has_ref and r.ref is not None:
            diff = 100.0 * (r.ours - r.ref) / max(1, r.ref)  # + means we need more tokens
            code = "32" if abs(diff) < 0.05 else ("31" if diff > 0 else "36")
            line += f"{r.ref:>13,}{r.ref_bpt:>13.3f}{paint(f'{diff:+.2f}% tokens', code, color):>17}"
        lines.append(line)
    if report.ref_note:
        lines.append(f"({report.ref_note}"
                     + (f"; rustbpe trained in {report.ref_train_s:.1f}s)" if report.ref_train_s else ")"))
    return "\n".join(lines)


def evaluate_folder(folder: str | Path, data: str | Path | None = None, compare: bool = True,
                    color: bool = False) -> str:
    """The report for a tokenizer folder, on the data it was trained on (or ``data``), as text."""
    return format_report(folder_report(folder, data, compare), color=color)


def folder_report(folder: str | Path, data: str | Path | None = None, compare: bool = True) -> EvalReport:
    """The report for a tokenizer folder, as numbers (the pipeline's report card reads them)."""
    from phases.phase0_tokenizer.bpe import BPETokenizer
    from phases.phase0_tokenizer.shards import iter_texts
    from phases.phase0_tokenizer.trainer import load_train_settings, resolve_data_dir
    tok = BPETokenizer.load(folder)
    settings = load_train_settings(folder)
    data = resolve_data_dir(data if data is not None else settings.data_dir if settings else None)
    if settings and compare:                      # rustbpe retrains on the tokenizer's own training data
        resolve_data_dir(settings.data_dir)
    return evaluate(tok, list(iter_texts(data, "val")), settings.texts if settings else None, compare=compare)


def add_arguments(parser) -> None:
    parser.add_argument("--tokenizer", type=Path, default=None, help="tokenizer folder (default <base>/tokenizer)")
    parser.add_argument("--data", type=Path, default=None, help="data folder (default: the one it was trained on)")
    parser.add_argument("--no-compare", action="store_true", help="skip training the rustbpe reference")


def run(args) -> None:
    from phases.common.console import use_color
    from phases.common.paths import tokenizer_dir
    print(evaluate_folder(args.tokenizer or tokenizer_dir(), args.data, compare=not args.no_compare,
                          color=use_color()))


if __name__ == "__main__":
    import sys

    from phases.common.console import command
    sys.exit(command("Bytes per token on four genres and the validation shard, vs rustbpe.", add_arguments, run))
