"""Turning bytes pieces into text, for the clients that decode by hand (aiohttp, the floor)."""

from __future__ import annotations

import codecs
from collections.abc import Callable
from typing import Literal

DecodeMode = Literal["incremental", "per-piece"]
Feed = Callable[[bytes], str]
Flush = Callable[[], str]


def text_decoder(mode: DecodeMode, charset: str = "utf-8") -> tuple[Feed, Flush]:
    """``(feed, flush)``: feed each piece, flush once at the end of the body.

    ``incremental`` keeps a multi-byte character split across pieces for the next piece;
    ``per-piece`` is ``piece.decode()`` on its own (the original Acytoo provider's way), which
    raises ``UnicodeDecodeError`` when a read ends inside a character.
    """
    if mode == "per-piece":
        return (lambda data: data.decode(charset)), (lambda: "")
    decoder = codecs.getincrementaldecoder(charset)(errors="strict")
    return decoder.decode, (lambda: decoder.decode(b"", True))
