"""What the command line prints: exit statuses, and error lines safe for a terminal.

Text that came from a server (a reason phrase, an error body, an exception
message quoting either) may hold terminal control sequences: ESC and the C1
CSI byte U+009B recolour, retitle or rewrite a terminal, and bidi overrides
make a line read differently from what it holds. :func:`printable` escapes
them, so every line the CLI writes to stderr shows such bytes as ``\\x9b`` /
``\\u202e`` instead of obeying them.
"""

from __future__ import annotations

from ._exceptions import HTTPStatusError

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "MAX_BODY_EXCERPT_CHARS",
    "MAX_LINE_CHARS",
    "describe_error",
    "printable",
]

EXIT_OK = 0
# A runtime failure: a typed AcytooError, a file or address that cannot be used, a bug.
EXIT_ERROR = 1
# Bad options or values; argparse's own status for them.
EXIT_USAGE = 2
# 128 + SIGINT: what a shell reports for a program stopped by Ctrl-C.
EXIT_INTERRUPTED = 130
# 128 + SIGPIPE: what a shell reports for `yes | head` (a writer whose reader went away).
EXIT_BROKEN_PIPE = 141

# Enough of an error body to recognise it ({"msg": "..."}, an HTML title), short of a screenful.
MAX_BODY_EXCERPT_CHARS = 200
# One error line a person can read; a hostile server cannot flood the terminal through it.
MAX_LINE_CHARS = 2000

# C0 controls (tab and newline too: one error is one line), DEL and C1 controls;
# bidi embeddings, overrides and isolates (the "Trojan Source" set); the line and
# paragraph separators that str.splitlines() and some terminals break lines at.
_ESCAPED = [
    *range(0x20),
    *range(0x7F, 0xA0),
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
    0x2028,
    0x2029,
    # Lone surrogates (undecodable bytes of a file name): no encoding can write them.
    *range(0xD800, 0xE000),
]
_ESCAPES = {code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" for code in _ESCAPED}


def printable(text: str) -> str:
    """``text`` with control characters, bidi controls and lone surrogates escaped.

    Each becomes ``\\xNN`` (below U+0100) or ``\\uNNNN``; everything else,
    backslashes included, is kept as it is: the aim is a line that cannot
    drive a terminal, not one that can be parsed back.
    """
    return text.translate(_ESCAPES)


def describe_error(exc: BaseException) -> str:
    """``Type: message`` for an error line, escaped and bounded.

    An :class:`~acytoo_raw.HTTPStatusError` also shows the start of the error
    body, whitespace folded to single spaces, since servers put the reason
    there (``{"msg": "..."}``).
    """
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, HTTPStatusError) and exc.body:
        text += f" (body: {_excerpt(exc.body)})"
    text = printable(text)
    if len(text) > MAX_LINE_CHARS:
        text = text[: MAX_LINE_CHARS - 1] + "…"
    return text


def _excerpt(body: bytes) -> str:
    text = " ".join(body[: MAX_BODY_EXCERPT_CHARS * 4].decode("utf-8", "replace").split())
    if len(text) > MAX_BODY_EXCERPT_CHARS:
        text = text[: MAX_BODY_EXCERPT_CHARS - 1] + "…"
    return text
