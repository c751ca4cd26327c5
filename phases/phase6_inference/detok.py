"""Streaming detokenisation that never prints half a character.

A byte-level BPE token is a run of *bytes*, not of characters: "é" (two UTF-8 bytes) or an
emoji (four) may be split over two or more tokens. Decoding each token on its own, as
nanochat's CLI does, prints U+FFFD (the replacement character) for each half.
``StreamDecoder`` keeps the bytes of a character that is not complete yet and emits text
only once its bytes are whole:

    dec = StreamDecoder(tokenizer)
    for token in tokens:
        print(dec.push(token), end="")   # "" while a character is incomplete
    print(dec.flush())                   # what is left (an unfinished character -> U+FFFD)

The concatenation of everything ``push`` and ``flush`` return equals
``tokenizer.decode(tokens)`` exactly, for any token sequence (property-tested), including
invalid byte sequences (U+FFFD, as the one-shot decode) and lone surrogates (the
tokenizer's error handler). Special tokens decode to their names, as ``decode`` does.

How: after each token, find where the bytes could still be the start of an unfinished
character (a lead byte in the last three bytes, followed only by bytes that may continue
it); decode everything before that point, keep the rest. A lead byte is never a
continuation byte, so decoding the two parts separately gives the same text as decoding
them together.

What it leaves out: grapheme clusters (an emoji with a skin-tone modifier may still arrive
in two complete pieces), normalisation.

Run nothing here directly; the engine and the CLI use it.
"""
from __future__ import annotations

from phases.phase0_tokenizer.merges import bytes_to_text

# The second byte a lead byte accepts (RFC 3629 table 3-7); ED also takes A0..BF, the
# encoded surrogates the tokenizer round-trips (bpe.py's 'surrogatepass').
_SECOND = {0xE0: (0xA0, 0xBF), 0xED: (0x80, 0xBF), 0xF0: (0x90, 0xBF), 0xF4: (0x80, 0x8F)}


def _needed(lead: int) -> int:
    """How many bytes a character starting with ``lead`` has (0: not a lead of a multi-byte one)."""
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    if 0xF0 <= lead <= 0xF4:
        return 4
    return 0


# --8<-- [start:incomplete]
def incomplete_tail(data: bytes | bytearray) -> int:
    """How many bytes at the end of ``data`` may be the beginning of a character still to come."""
    for back in range(1, min(3, len(data)) + 1):
        i = len(data) - back
        need = _needed(data[i])
        if need == 0:
            if 0x80 <= data[i] <= 0xBF:
                continue             # a continuation byte: its lead may be further back
            return 0                 # ASCII or an invalid byte: nothing can be pending
        if need <= back:
            return 0                 # the character at i is long enough already
        tail = data[i + 1:]
        lo, hi = _SECOND.get(data[i], (0x80, 0xBF))
        if tail and not lo <= tail[0] <= hi:
            return 0
        if any(not 0x80 <= b <= 0xBF for b in tail[1:]):
            return 0
        return back
    return 0
# --8<-- [end:incomplete]


class StreamDecoder:
    """Token ids in, complete text out (see the module docstring)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.pending = bytearray()

    def push(self, token: int) -> str:
        """Add one token; return the text that is now complete (maybe "")."""
        self.pending += self.tokenizer.token_bytes(int(token))
        keep = incomplete_tail(self.pending)
        cut = len(self.pending) - keep
        if cut == 0:
            return ""
        text = bytes_to_text(bytes(self.pending[:cut]))
        del self.pending[:cut]
        return text

    def flush(self) -> str:
        """Return what is left; an unfinished character becomes U+FFFD."""
        text = bytes_to_text(bytes(self.pending)) if self.pending else ""
        self.pending.clear()
        return text
