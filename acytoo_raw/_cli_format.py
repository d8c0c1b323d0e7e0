"""How the command line talks to the terminal and ends: exit statuses, escaped
error lines on stderr, the answer on stdout, Ctrl-C held back outside the loop.

Text that came from a server (a reason phrase, an error body, an exception
message quoting either) may hold terminal control sequences: ESC and the C1
CSI byte U+009B recolour, retitle or rewrite a terminal, and bidi overrides
make a line read differently from what it holds. :func:`printable` escapes
them, and every line the CLI writes to stderr goes through it (:func:`note`),
so such bytes show as ``\\x9b`` / ``\\u202e`` instead of being obeyed.

Secrets (an API key) are handed to :meth:`Output.hide`; from then on every
line on stderr has them cut out before it is shortened or folded, including
an error body a server echoed the key into and the ``ACYTOO_RAW_DEBUG``
traceback. Standard output is the server's answer, written as it came.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from ._exceptions import AcytooError, HTTPStatusError

__all__ = [
    "DEBUG_VARIABLE",
    "EXIT_BROKEN_PIPE",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "MAX_BODY_EXCERPT_CHARS",
    "MAX_BODY_SCAN_BYTES",
    "MAX_LINE_CHARS",
    "PROG",
    "REDACTED",
    "Failure",
    "Output",
    "OutputClosed",
    "OutputFailed",
    "SigintGate",
    "describe_error",
    "error_text",
    "exit_status",
    "flush_stdout",
    "note",
    "printable",
    "redact",
    "say",
    "sigint_held",
]

PROG = "acytoo-raw"
# Set to anything but "" or "0": a status-1 error prints its traceback before its line.
DEBUG_VARIABLE = "ACYTOO_RAW_DEBUG"

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
# How much of an error body is searched for secrets before its excerpt is cut: all the
# library keeps of one (ERROR_BODY_LIMIT), so a key cannot straddle the cut.
MAX_BODY_SCAN_BYTES = 64 * 1024
# What a hidden secret shows as.
REDACTED = "<hidden>"

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


def redact(text: str, hidden: Iterable[str] = ()) -> str:
    """``text`` with every secret in ``hidden`` replaced by :data:`REDACTED`.

    Also the forms a server's JSON or a Python repr would show a secret in
    (``\\"`` and ``\\/`` escapes, ``\\'``), so an echoed key is caught too.
    """
    for form in sorted(_secret_forms(hidden), key=len, reverse=True):
        text = text.replace(form, REDACTED)
    return text


def _secret_forms(hidden: Iterable[str]) -> set[str]:
    forms: set[str] = set()
    for secret in hidden:
        if secret:
            escaped = json.dumps(secret, ensure_ascii=False)[1:-1]
            forms.update((secret, escaped, escaped.replace("/", "\\/"), repr(secret)[1:-1]))
    return forms


def describe_error(exc: BaseException, hidden: Iterable[str] = ()) -> str:
    """``Type: message`` for an error line, escaped and bounded, secrets cut out.

    An :class:`~acytoo_raw.HTTPStatusError` also shows the start of the error
    body, whitespace folded to single spaces, since servers put the reason
    there (``{"msg": "..."}``). The secrets in ``hidden`` are cut out before
    anything is folded or shortened, so no part of one survives.
    """
    hidden = tuple(hidden)
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    text = redact(text, hidden)
    if isinstance(exc, HTTPStatusError) and exc.body:
        text += f" (body: {_excerpt(exc.body, hidden)})"
    text = printable(text)
    if len(text) > MAX_LINE_CHARS:
        text = text[: MAX_LINE_CHARS - 1] + "…"
    return text


def _excerpt(body: bytes, hidden: tuple[str, ...]) -> str:
    decoded = body[:MAX_BODY_SCAN_BYTES].decode("utf-8", "replace")
    text = " ".join(redact(decoded, hidden).split())
    if len(text) > MAX_BODY_EXCERPT_CHARS:
        text = text[: MAX_BODY_EXCERPT_CHARS - 1] + "…"
    return text


class Failure(Exception):
    """A runtime failure the CLI explains itself: the message is the whole line."""


class OutputFailed(Failure):
    """Standard output cannot be written (closed, disk full, unencodable text)."""


class OutputClosed(Exception):
    """The reader of standard output went away (EPIPE): end quietly."""


class Output:
    """Standard output for the answer: flushed per piece, failures typed, line state kept.

    ``sys.stdout`` is looked up on every write: it is ``None`` when the
    process started with descriptor 1 closed, and tests swap it.
    """

    # Text was written since the last newline. A class default rather than an __init__:
    # main() builds this before its try, and no Python frame there means no place for
    # a Ctrl-C to land outside it.
    line_open = False
    # Secrets no line on stderr may show (see hide()); a class default for the same reason.
    hidden: tuple[str, ...] = ()

    def hide(self, secret: str | None) -> None:
        """Cut ``secret`` out of every error line from now on (``None`` or ``""``: nothing)."""
        if secret:
            self.hidden = (*self.hidden, secret)

    def check_open(self) -> None:
        """Refuse to start (connect, stream) when there is nowhere to write the answer."""
        if sys.stdout is None:
            raise OutputFailed("standard output is closed; redirect it (> answer.txt) instead")

    def write(self, text: str) -> None:
        self.check_open()
        if not text:
            return
        # Open before writing: Ctrl-C on trio can land between the write and the line
        # after it, and an extra newline beats a missing one.
        was_open, self.line_open = self.line_open, True
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError as exc:
            raise OutputClosed from exc
        except UnicodeEncodeError as exc:
            self.line_open = was_open  # Refused before anything was written.
            raise OutputFailed(
                f"cannot write the answer to standard output: {exc} (set PYTHONIOENCODING=utf-8)"
            ) from exc
        except (OSError, ValueError) as exc:  # ENOSPC, EIO; ValueError: a closed file.
            raise OutputFailed(f"cannot write to standard output: {error_text(exc)}") from exc
        self.line_open = not text.endswith("\n")

    def end_line(self) -> None:
        """Finish a partly written line (on Ctrl-C or an error), as far as stdout allows."""
        if self.line_open:
            with suppress(Exception):
                self.write("\n")


@dataclass(frozen=True, slots=True)
class SigintGate:
    """Ctrl-C (SIGINT) held back, or let through, on this thread.

    A KeyboardInterrupt that lands in an import or in building or closing an
    event loop leaves files, sockets or the loop itself unclosed
    (ResourceWarnings at exit). Held back there, the signal waits; it reaches
    the loop once that runs, or surfaces as KeyboardInterrupt when the gate
    opens for good.
    """

    # False off the main thread, where signals cannot be blocked (Windows), and when
    # SIGINT was blocked already (its owner decides when it comes through).
    active: bool

    def open(self) -> None:
        if self.active:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

    def close(self) -> None:
        if self.active:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


@contextmanager
def sigint_held() -> Iterator[SigintGate]:
    """Hold Ctrl-C back for the block (see :class:`SigintGate`); let it through at the end."""
    active = (
        hasattr(signal, "pthread_sigmask")
        and threading.current_thread() is threading.main_thread()
        and signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, ())
    )
    gate = SigintGate(active)
    gate.close()
    try:
        yield gate
    finally:
        gate.open()


def exit_status(exc: BaseException, out: Output) -> int:
    """Report ``exc`` in at most one line on stderr and choose the exit status."""
    leaves = list(_leaves(exc))
    if any(isinstance(leaf, KeyboardInterrupt) for leaf in leaves):
        out.end_line()
        return EXIT_INTERRUPTED
    if any(isinstance(leaf, OutputClosed) for leaf in leaves):
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    first = leaves[0]
    if isinstance(first, SystemExit):  # argparse: --help, --version, usage errors.
        return _system_exit_status(first)
    out.end_line()
    hidden = out.hidden
    if _debug():
        with suppress(Exception):
            _print_traceback(exc, hidden)
    if isinstance(first, Failure):
        say(str(first), hidden)
        if isinstance(first, OutputFailed):
            _silence_stdout()
    elif isinstance(first, (AcytooError, OSError)):
        say(describe_error(first, hidden), hidden)
    else:
        hint = "" if _debug() else f"; {DEBUG_VARIABLE}=1 shows the traceback"
        say(f"unexpected {describe_error(first, hidden)} (a bug: please report it{hint})", hidden)
    return EXIT_ERROR


def _print_traceback(exc: BaseException, hidden: tuple[str, ...]) -> None:
    """The traceback on stderr, secrets cut out (messages quote what servers sent)."""
    stream = sys.stderr
    if stream is not None:
        stream.write(redact("".join(traceback.format_exception(exc)), hidden))
        stream.flush()


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` itself, or the exceptions inside an exception group, depth first."""
    inner = getattr(exc, "exceptions", None)  # BaseExceptionGroup, or its 3.10 backport.
    if isinstance(inner, tuple) and inner:
        for child in inner:
            yield from _leaves(child)
    else:
        yield exc


def _system_exit_status(exc: SystemExit) -> int:
    if exc.code is None:
        return EXIT_OK
    if isinstance(exc.code, int):
        return exc.code
    say(str(exc.code))
    return EXIT_ERROR


def flush_stdout(status: int) -> int:
    """Flush what argparse printed (help, version) while a broken pipe can still be told apart."""
    if sys.stdout is None or status == EXIT_BROKEN_PIPE:
        return status
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE if status == EXIT_OK else status
    except (OSError, ValueError) as exc:
        say(f"cannot write to standard output: {error_text(exc)}")
        _silence_stdout()
        return EXIT_ERROR if status == EXIT_OK else status
    return status


def _silence_stdout() -> None:
    """Point descriptor 1 at /dev/null so the interpreter's final flush cannot fail again.

    A failed flush keeps its buffer, and Python flushes stdout once more at
    exit: "Exception ignored ... BrokenPipeError" and status 120. This is the
    recipe of Python's ``signal`` docs ("Note on SIGPIPE"). Skipped when
    ``sys.stdout`` has no descriptor (tests capture it in memory).
    """
    if sys.stdout is None:
        return
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):  # io.UnsupportedOperation is both.
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def error_text(exc: BaseException) -> str:
    """An OSError's text without its ``[Errno N]`` prefix; any other error's message."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _debug() -> bool:
    return os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")


def say(text: str, hidden: Iterable[str] = ()) -> None:
    """One error line on stderr: ``acytoo-raw: <text>``, escaped, secrets cut out."""
    note(f"{PROG}: {text}", hidden)


def note(text: str, hidden: Iterable[str] = ()) -> None:
    """One line on stderr, escaped, the secrets in ``hidden`` cut out; nothing when
    stderr is closed or broken."""
    stream = sys.stderr
    if stream is None:  # Started with descriptor 2 closed: print() would fall back to stdout.
        return
    with suppress(OSError, ValueError):
        stream.write(printable(redact(text, hidden)) + "\n")
        stream.flush()
