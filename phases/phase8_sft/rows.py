"""SFT rows: whole conversations packed best-fit into rows, padded, never cut.

Pretraining rows (Phase 5) crop a document when none fits, because a document's middle
is still good text to learn from. A conversation is different: cut after the question,
the answer is gone; cut in the answer, the model learns to stop mid-sentence. So here a
row of ``T + 1`` tokens is filled like this:

1. keep a buffer of ``buffer_size`` rendered conversations (Phase 5's ``BestFitBuffer``);
2. repeatedly put in the *largest* conversation that still fits whole;
3. when none fits, fill the rest with padding (``<|bos|>`` tokens whose targets are -1).

Targets are the next tokens where Phase 0's loss mask is 1 (assistant text, tool calls,
``<|assistant_end|>``) and -1 everywhere else (user turns, tool outputs, padding), so the
loss is the mean over supervised tokens only. A conversation longer than a row is
dropped and counted, never cut; one with no supervised token is dropped too, so no row is
ever fully masked (nanochat #486 measured 0.5% such rows at length 2048).

**Numbering and exact resume.** Rank ``r`` of ``W`` takes conversations ``r, r + W,
r + 2W, ...`` of the mixture, cycling through epochs; a conversation's *number* says which
one it is. The whole state is the next number to pull and the numbers in the buffer, so
``load_state_dict`` re-renders those and the following batches are exactly those of an
uninterrupted run.

What it leaves out: attention masks between the conversations of one row (nanochat has
none either), sorting by length over the whole dataset.

Run: ``python -m phases.phase8_sft.rows`` packs the offline data with a small tokenizer
and prints a row, its targets and the utilisation of best-fit vs greedy.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from phases.common.console import UserError
from phases.phase0_tokenizer.chat import render_conversation
from phases.phase5_data.loader import number_ranges
from phases.phase5_data.packing import BestFitBuffer

STATE_VERSION = 1


class Rendered(list):
    """A conversation's token ids, with its loss mask alongside (``.mask``, 1 = supervised)."""

    def __init__(self, ids: Sequence[int], mask: Sequence[int]):
        super().__init__(ids)
        self.mask = list(mask)


def render(tok, conversation) -> Rendered:
    ids, mask = render_conversation(tok, conversation, max_tokens=1 << 62)   # never cut here
    return Rendered(ids, mask)


@dataclass
class RowStats:
    rows: int = 0
    row_tokens: int = 0          # positions in all rows (T + 1 each)
    pad_tokens: int = 0
    supervised_tokens: int = 0   # targets that count in the loss
    conversations: int = 0       # packed into rows
    dropped_long: int = 0        # longer than a row: dropped, never cut
    dropped_unsupervised: int = 0

    @property
    def utilisation(self) -> float:
        """Supervised tokens / row tokens: the share of the compute that trains something."""
        return self.supervised_tokens / max(1, self.row_tokens)

    @property
    def fill(self) -> float:
        return 1 - self.pad_tokens / max(1, self.row_tokens)

    @property
    def dropped_share(self) -> float:
        dropped = self.dropped_long + self.dropped_unsupervised
        return dropped / max(1, dropped + self.conversations)

    def as_dict(self) -> dict:
        return {**asdict(self), "utilisation": self.utilisation, "fill": self.fill, "dropped_share": self.dropped_share}


# --8<-- [start:fill_row]
def fill_row_padded(ids: np.ndarray, mask: np.ndarray, buffer: BestFitBuffer, refill: Callable[[], None],
                    pad_id: int, stats: RowStats) -> bool:
    """Fill one row (``ids``, ``mask``: (T+1,)) with whole conversations, then padding.

    Returns False, leaving ``stats`` alone, when there was no conversation left at all.
    """
    cap, pos, convs, supervised = len(ids), 0, 0, 0
    while pos < cap:
        refill()
        conv = buffer.take_best(cap - pos)            # the largest conversation that fits whole
        if conv is None:                              # none fits (or none left): pad, never cut
            break
        n = len(conv)
        ids[pos:pos + n] = conv
        mask[pos:pos + n] = conv.mask
        supervised += sum(conv.mask)                  # its first token, <|bos|>, is never supervised
        pos, convs = pos + n, convs + 1
    if pos == 0:
        return False
    ids[pos:], mask[pos:] = pad_id, 0                 # padding: read as <|bos|>, never a target
    stats.rows, stats.row_tokens, stats.pad_tokens = stats.rows + 1, stats.row_tokens + cap, stats.pad_tokens + cap - pos
    stats.conversations += convs
    stats.supervised_tokens += supervised
    return True
# --8<-- [end:fill_row]


class ConversationRows:
    """Batches ``(inputs, targets)``, each (B, T) int64, of padded best-fit conversation rows.

    ``conversations``: a sequence (a list, or Phase 7's ``TaskMixture``) of conversations.
    ``cycle``: start the next epoch when it runs out (training) or stop (validation).
    """

    def __init__(self, conversations: Sequence, tok, batch_size: int, seq_len: int, rank: int = 0,
                 world_size: int = 1, device: str | torch.device = "cpu", buffer_size: int = 100,
                 cycle: bool = True):
        if batch_size < 1 or seq_len < 1 or buffer_size < 1:
            raise UserError(f"batch_size, seq_len and buffer_size must be >= 1, got {batch_size}, {seq_len}, "
                            f"{buffer_size}")
        if len(conversations) <= rank:
            raise UserError(f"{len(conversations)} conversations cannot feed rank {rank} of {world_size}")
        self.conversations, self.tok = conversations, tok
        self.B, self.T, self.rank, self.world = batch_size, seq_len, rank, world_size
        self.device, self.buffer_size, self.cycle = torch.device(device), buffer_size, cycle
        self.pad_id = tok.encode_special("<|bos|>")
        self.buffer = BestFitBuffer()
        self.stats = RowStats()
        self.cursor = 0                       # this rank's pulls so far: the next number is cursor*W + rank
        self._ids = np.empty((batch_size, seq_len + 1), dtype=np.int64)    # (B, T+1), reused
        self._mask = np.empty((batch_size, seq_len + 1), dtype=np.int64)   # (B, T+1)

    def _number(self, k: int) -> int:
        return k * self.world + self.rank

    def _render(self, number: int) -> Rendered | None:
        conv = render(self.tok, self.conversations[number % len(self.conversations)])
        if len(conv) > self.T + 1:
            self.stats.dropped_long += 1
        elif not any(conv.mask[1:]):
            self.stats.dropped_unsupervised += 1
        else:
            return conv
        return None

    def _refill(self) -> None:
        misses = 0                            # pulls in a row that gave nothing to train on
        while len(self.buffer) < self.buffer_size:
            number = self._number(self.cursor)
            if not self.cycle and number >= len(self.conversations):
                return
            self.cursor += 1
            conv = self._render(number)
            if conv is not None:
                self.buffer.add(number, conv)
                misses = 0
                continue
            misses += 1
            if misses >= len(self.conversations) and not len(self.buffer):   # a whole epoch: cycling would spin
                share = "" if self.world == 1 else f" that rank {self.rank} of {self.world} reads"
                raise UserError(f"none of the {len(self.conversations):,} conversations{share} fits a row of "
                                f"{self.T + 1} tokens with something to learn ({self.stats.dropped_long:,} too long, "
                                f"{self.stats.dropped_unsupervised:,} without assistant tokens): raise sequence_len")

    def next_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """The next (B, T+1) token rows and their loss masks; ``StopIteration`` when a
        non-cycling loader has nothing left (its last batch may have fewer rows)."""
        rows = 0
        for b in range(self.B):
            if not fill_row_padded(self._ids[b], self._mask[b], self.buffer, self._refill, self.pad_id, self.stats):
                break
            rows += 1
        if rows == 0:
            raise StopIteration
        return self._ids[:rows].copy(), self._mask[:rows].copy()

    # --8<-- [start:next_batch]
    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = map(torch.from_numpy, self.next_rows())              # (B, T+1) each
        targets = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -1)           # (B, T): -1 = not supervised
        return ids[:, :-1].to(self.device), targets.to(self.device)
    # --8<-- [end:next_batch]

    @property
    def epoch(self) -> int:
        return self._number(self.cursor) // len(self.conversations)

    def state_dict(self) -> dict:
        return {"version": STATE_VERSION, "kind": "conversation_rows", "cursor": self.cursor,
                "buffer": number_ranges(self.buffer.numbers()), "epoch": self.epoch, "rank": self.rank,
                "world_size": self.world, "conversations": len(self.conversations)}

    def load_state_dict(self, state: dict) -> None:
        if state.get("kind") != "conversation_rows" or state.get("version") != STATE_VERSION:
            raise UserError("the checkpoint's data state was not saved by Phase 8's conversation rows")
        if (state["rank"], state["world_size"]) != (self.rank, self.world):
            raise UserError(f"the checkpoint was saved by rank {state['rank']} of {state['world_size']}; this is "
                            f"rank {self.rank} of {self.world}: resume with the same number of ranks")
        if state["conversations"] != len(self.conversations):
            raise UserError(f"the conversation mixture changed since the checkpoint ({state['conversations']:,} "
                            f"then, {len(self.conversations):,} now): resume with the same data settings")
        self.buffer = BestFitBuffer()
        for start, count in state["buffer"]:
            for number in range(start, start + count):
                conv = render(self.tok, self.conversations[number % len(self.conversations)])
                self.buffer.add(number, conv)
        self.cursor = int(state["cursor"])


def count_rows(conversations: Sequence, tok, seq_len: int, buffer_size: int = 100, rank: int = 0,
               world_size: int = 1) -> tuple[int, RowStats]:
    """How many rows one epoch fills on this rank (what 'one epoch' of SFT means), and their stats."""
    rows = ConversationRows(conversations, tok, 1, seq_len, rank, world_size, buffer_size=buffer_size, cycle=False)
    n = 0
    while True:
        try:
            rows.next_batch()
        except StopIteration:
            return n, rows.stats
        n += 1


def fixed_batches(conversations: Sequence, tok, batch_size: int, seq_len: int, max_tokens: int, rank: int = 0,
                  world_size: int = 1, device="cpu", buffer_size: int = 100) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Validation batches: the held-out conversations packed once, up to ``max_tokens`` positions."""
    rows = ConversationRows(conversations, tok, batch_size, seq_len, rank, world_size, device, buffer_size, cycle=False)
    out, budget = [], max(1, max_tokens // (world_size * seq_len))
    while budget > 0:
        try:
            x, y = rows.next_batch()
        except StopIteration:
            break
        out.append((x[:budget], y[:budget]))
        budget -= len(x)
    return out


if __name__ == "__main__":
    from phases.phase0_tokenizer.bpe import BPETokenizer
    from phases.phase8_sft.offline import generate

    convs = [c for task in ("arithmetic", "identity", "stdlib") for c in generate(task, "train", 300)]
    text = [m["content"] if isinstance(m["content"], str) else " ".join(p["text"] for p in m["content"])
            for c in convs for m in c["messages"]]
    tok = BPETokenizer.train(text, vocab_size=600)
    x, y = ConversationRows(convs, tok, 1, 128).next_batch()
    for i, t in zip(x[0, :40].tolist(), y[0, :40].tolist()):
        print(f"{tok.decode([i])!r:>24} -> {'(ignored)' if t < 0 else repr(tok.decode([t]))}")
    for size, name in ((100, "best fit"), (1, "greedy")):
        n, st = count_rows(convs, tok, 128, buffer_size=size)
        print(f"{name:>8}: {n} rows, utilisation {st.utilisation:.1%}, fill {st.fill:.1%}, "
              f"dropped {st.dropped_share:.1%}")
