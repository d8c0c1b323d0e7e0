"""Command line: ``chat`` streams an answer, ``serve`` runs the loopback server,
``demo`` does both in one process with nothing to configure.

Every way out ends in at most one line on stderr (``acytoo-raw: ...``, with
whatever came from a server escaped by :func:`~acytoo_raw._cli_format.printable`)
and one of these exit statuses, also listed by ``--help``:

=====  ======================================================================
0      success (``--help`` and ``--version`` too)
1      a runtime error: a typed :class:`~acytoo_raw.AcytooError` (connect, TLS,
       proxy, HTTP status, timeout, protocol), a file that cannot be used, an
       address that cannot be bound, standard output that cannot be written,
       or a bug (the line says so)
2      a usage error: an unknown option, a bad value (port, URL, number),
       options that exclude or need each other, ``--backend trio`` without trio
130    interrupted by Ctrl-C (128 + SIGINT); a partly written answer line is
       finished with a newline first
141    standard output closed by its reader (``| head -c 10``): nothing printed
=====  ======================================================================

A closed pipe exits 141 = 128 + SIGPIPE because that is what a shell reports
for any Unix tool killed by SIGPIPE (``yes | head``), so scripts read it the
same way. Python offers no convention of its own: the interpreter exits 120
after an "Exception ignored" warning, the ``signal`` docs' "Note on SIGPIPE"
exits 1, ``python -m json.tool`` exits 32 (EPIPE). We follow the docs' recipe
(descriptor 1 pointed at ``/dev/null``, so the final flush stays quiet) with
the shell's number.

No traceback is ever printed unless ``ACYTOO_RAW_DEBUG=1`` is set; then the
traceback of a status-1 error comes before its line. The one window left is
the import of the package itself, before :func:`main` runs: Ctrl-C there is
Python's own ``KeyboardInterrupt`` traceback.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import signal
import ssl
import statistics
import sys
import threading
import time
import traceback
from collections.abc import AsyncGenerator, Iterator, Sequence
from contextlib import aclosing, contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from itertools import pairwise
from typing import NoReturn

import anyio

from . import __version__
from ._cli_format import (
    EXIT_BROKEN_PIPE,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    describe_error,
    printable,
)
from ._exceptions import AcytooError, ConnectError, ConnectTimeout, LocalProtocolError, TLSError
from ._network import ssl_context_from_cafile
from ._timeouts import Timeout
from ._urls import check_base_url, parse_proxy_url
from .provider import Acytoo
from .server import COMPLETIONS_PATH, serve, serve_forever

__all__ = ["main"]

PROG = "acytoo-raw"
MODEL = "gpt-3.5-turbo"
DEMO_PROMPT = (
    "Streaming piece by piece over a raw socket: anyio for TCP and TLS, h11 for HTTP/1.1, "
    "and an incremental decoder so that Привет, 你好 and 👋 arrive whole."
)
# Between two demo pieces: long enough to watch the stream, short enough to finish in ~1 s.
DEMO_DELAY = 0.03
BASE_URL_VARIABLE = "ACYTOO_BASE_URL"
DEBUG_VARIABLE = "ACYTOO_RAW_DEBUG"
EXAMPLE_BASE_URL = "http://127.0.0.1:8000"
EXAMPLE_PROXY = "http://127.0.0.1:3128"
TRIO_INSTALL = "pip install 'acytoo_raw[trio]'"
OFFLINE_HINT = (
    f"the public Acytoo service is offline: start a server with `{PROG} serve` "
    f"and pass --base-url {EXAMPLE_BASE_URL}"
)

EPILOG = f"""\
exit status:
  0    success
  1    error: connect, TLS, proxy, HTTP status, timeout, protocol, files, address in use
  2    usage error
  130  interrupted (Ctrl-C)
  141  standard output closed by its reader (e.g. | head): quiet

environment:
  {BASE_URL_VARIABLE}  default for chat --base-url
  HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY  proxies for chat (unless --no-proxy)
  {DEBUG_VARIABLE}=1  print the traceback of an error"""


class _Failure(Exception):
    """A runtime failure the CLI explains itself: the message is the whole line."""


class _OutputFailed(_Failure):
    """Standard output cannot be written (closed, disk full, unencodable text)."""


class _OutputClosed(Exception):
    """The reader of standard output went away (EPIPE): end quietly."""


class _EncryptedKey(Exception):
    """Raised from the password callback: the server's private key is encrypted."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (see the module docstring)."""
    out = _Output()
    try:
        with _sigint_held() as gate:
            args = _parse(argv)
            anyio.run(partial(_run, args, out, gate), backend=args.backend)
        status = EXIT_OK
    except BaseException as exc:  # Every way out, Ctrl-C and argparse's exits too, gets a status.
        status = _exit_status(exc, out)
    return _flush_stdout(status)


async def _run(args: argparse.Namespace, out: _Output, gate: _SigintGate) -> None:
    gate.open()  # The loop is up and handles Ctrl-C itself, as a cancellation.
    try:
        await args.handler(args, out)
    finally:
        gate.close()  # Held again while the loop is taken down.


@dataclass(frozen=True, slots=True)
class _SigintGate:
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
def _sigint_held() -> Iterator[_SigintGate]:
    """Hold Ctrl-C back for the block (see :class:`_SigintGate`); let it through at the end."""
    active = (
        hasattr(signal, "pthread_sigmask")
        and threading.current_thread() is threading.main_thread()
        and signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, ())
    )
    gate = _SigintGate(active)
    gate.close()
    try:
        yield gate
    finally:
        gate.open()


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors escaped like every other line on stderr."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {printable(message)}\n")


def _parser() -> _Parser:
    parser = _Parser(
        prog=PROG,
        description="Raw-socket streaming client for the Acytoo chat API.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"{PROG} {__version__}", help="print the version"
    )
    parser.add_argument(
        "--backend",
        choices=("asyncio", "trio"),
        default="asyncio",
        help=f"event loop to run on (default: asyncio; trio needs {TRIO_INSTALL})",
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="what to do"
    )

    chat = commands.add_parser("chat", help="stream the answer to a message to stdout")
    chat.add_argument("message", help="the user message to send")
    chat.add_argument(
        "--base-url",
        type=_base_url,
        help=f"server to ask, like {EXAMPLE_BASE_URL} "
        f"(default: ${BASE_URL_VARIABLE}, else {Acytoo.url}, which is offline)",
    )
    proxies = chat.add_mutually_exclusive_group()
    proxies.add_argument(
        "--proxy",
        type=_proxy_url,
        help="proxy to go through: http://[user:pass@]host:port, https://..., "
        "socks5://... (names resolved here) or socks5h://... (resolved by the proxy)",
    )
    proxies.add_argument(
        "--no-proxy",
        action="store_true",
        help="ignore HTTPS_PROXY/HTTP_PROXY/ALL_PROXY from the environment",
    )
    chat.add_argument(
        "--temperature",
        type=_finite,
        default=0.5,
        help="sampling temperature sent in the payload (default: 0.5)",
    )
    chat.add_argument(
        "--timeout",
        type=_seconds,
        help="seconds each for connecting, each read and each write (default: the library's)",
    )
    chat.add_argument("--cafile", help="PEM file of CA certificates to trust instead of the system")
    chat.add_argument("--proxy-cafile", help="PEM file of CA certificates for an https:// proxy")
    chat.set_defaults(handler=_chat, command_parser=chat)

    server = commands.add_parser("serve", help="run the Acytoo-compatible loopback server")
    server.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    server.add_argument(
        "--port", type=_port, default=8000, help="TCP port, 0 for any free one (default: 8000)"
    )
    server.add_argument(
        "--delay", type=_seconds, default=0.05, help="seconds between pieces (default: 0.05)"
    )
    server.add_argument(
        "--piece-size", type=_positive_int, help="characters per piece (default: word by word)"
    )
    server.add_argument(
        "--certfile", help="PEM certificate chain (may hold the key too): serve https"
    )
    server.add_argument("--keyfile", help="PEM private key for --certfile (not encrypted)")
    server.set_defaults(handler=_serve, command_parser=server)

    demo = commands.add_parser("demo", help="serve on loopback and stream a reply through it")
    demo.set_defaults(handler=_demo, command_parser=demo)
    return parser


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parsed options, checked as a whole; a usage error exits with status 2."""
    parser = _parser()
    args = parser.parse_args(argv)
    command: _Parser = args.command_parser
    if args.command == "chat" and args.base_url is None:
        args.base_url = _base_url_from_environment(command)
    if args.command == "serve" and args.keyfile is not None and args.certfile is None:
        command.error("argument --keyfile: needs --certfile (the certificate the key belongs to)")
    if args.backend == "trio":
        try:
            importlib.import_module("trio")
        except ImportError as exc:
            problem = "is not installed" if exc.name == "trio" else f"cannot be imported ({exc})"
            parser.error(f"--backend trio: the trio package {problem}; install it: {TRIO_INSTALL}")
    return args


def _base_url_from_environment(parser: _Parser) -> str:
    value = os.environ.get(BASE_URL_VARIABLE, "").strip()
    if not value:  # Unset and blank are the same, as for the proxy variables.
        return Acytoo.url
    try:
        return _base_url(value)
    except argparse.ArgumentTypeError as exc:
        parser.error(f"${BASE_URL_VARIABLE}: {exc}")


def _base_url(text: str) -> str:
    """argparse type of ``--base-url``: refuse what the client would refuse, saying what fits."""
    try:
        check_base_url(text)
    except LocalProtocolError as exc:
        raise argparse.ArgumentTypeError(f"expected a URL like {EXAMPLE_BASE_URL}: {exc}") from None
    return text


def _proxy_url(text: str) -> str:
    """argparse type of ``--proxy``; the message never repeats the URL (it may hold a password)."""
    try:
        parse_proxy_url(text)
    except LocalProtocolError as exc:
        raise argparse.ArgumentTypeError(f"expected a URL like {EXAMPLE_PROXY}: {exc}") from None
    return text


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def _seconds(text: str) -> float:
    value = _finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text!r}")
    return value


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def _positive_int(text: str) -> int:
    value = _whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1: {text!r}")
    return value


def _port(text: str) -> int:
    value = _whole_number(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port from 0 to 65535: {text!r}")
    return value


class _Output:
    """Standard output for the answer: flushed per piece, failures typed, line state kept.

    ``sys.stdout`` is looked up on every write: it is ``None`` when the
    process started with descriptor 1 closed, and tests swap it.
    """

    # Text was written since the last newline. A class default rather than an __init__:
    # main() builds this before its try, and no Python frame there means no place for
    # a Ctrl-C to land outside it.
    line_open = False

    def check_open(self) -> None:
        """Refuse to start (connect, stream) when there is nowhere to write the answer."""
        if sys.stdout is None:
            raise _OutputFailed("standard output is closed; redirect it (> answer.txt) instead")

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
            raise _OutputClosed from exc
        except UnicodeEncodeError as exc:
            self.line_open = was_open  # Refused before anything was written.
            raise _OutputFailed(
                f"cannot write the answer to standard output: {exc} (set PYTHONIOENCODING=utf-8)"
            ) from exc
        except (OSError, ValueError) as exc:  # ENOSPC, EIO; ValueError: a closed file.
            raise _OutputFailed(f"cannot write to standard output: {_reason(exc)}") from exc
        self.line_open = not text.endswith("\n")

    def end_line(self) -> None:
        """Finish a partly written line (on Ctrl-C or an error), as far as stdout allows."""
        if self.line_open:
            with suppress(Exception):
                self.write("\n")


def _completion(args: argparse.Namespace) -> AsyncGenerator[str, None]:
    """The provider call behind ``chat``: the one place that maps options onto it."""
    proxy_context = None
    if args.proxy_cafile is not None:
        proxy_context = ssl_context_from_cafile(args.proxy_cafile)
    return Acytoo.create_async_generator(
        MODEL,
        [{"role": "user", "content": args.message}],
        args.proxy,
        base_url=args.base_url,
        timeout=Timeout.of(args.timeout),
        cafile=args.cafile,
        proxy_ssl_context=proxy_context,
        trust_env=not args.no_proxy,
        temperature=args.temperature,
    )


async def _chat(args: argparse.Namespace, out: _Output) -> None:
    out.check_open()
    pieces = _completion(args)
    try:
        async with aclosing(pieces):
            async for piece in pieces:
                out.write(piece)
    except (ConnectError, ConnectTimeout, TLSError) as exc:
        if args.base_url != Acytoo.url:
            raise
        raise _Failure(f"{describe_error(exc)}; {OFFLINE_HINT}") from exc
    out.write("\n")


async def _serve(args: argparse.Namespace, out: _Output) -> None:
    context = _server_ssl_context(args.certfile, args.keyfile)
    listening = False

    def announce(url: str) -> None:
        nonlocal listening
        listening = True
        _note(f"serving {url}{COMPLETIONS_PATH} (Ctrl-C to stop)")

    try:
        await serve_forever(
            args.host,
            args.port,
            delay=args.delay,
            piece_size=args.piece_size,
            ssl_context=context,
            on_ready=announce,
        )
    except (OSError, ValueError) as exc:  # ValueError: a host getaddrinfo cannot even take.
        if listening:
            raise
        host = f"[{args.host}]" if ":" in args.host else args.host
        raise _Failure(f"cannot listen on {host}:{args.port}: {_reason(exc)}") from exc


def _server_ssl_context(certfile: str | None, keyfile: str | None) -> ssl.SSLContext | None:
    """The server's TLS context, or ``None`` for plain HTTP; each problem named with its file.

    Raises:
        _Failure: a file cannot be read, holds no certificate or no key, the
            key is encrypted or belongs to another certificate.
    """
    if certfile is None:
        return None
    cert_pem = _read_file("--certfile", certfile)
    key_option, key_path, key_pem = "--certfile", certfile, cert_pem
    if keyfile is not None:
        key_option, key_path, key_pem = "--keyfile", keyfile, _read_file("--keyfile", keyfile)
    if b"-----BEGIN CERTIFICATE-----" not in cert_pem:
        raise _Failure(f"--certfile {certfile}: no PEM certificate in it")
    if b"PRIVATE KEY-----" not in key_pem:
        where = "pass its key with --keyfile" if keyfile is None else "expected a PEM private key"
        raise _Failure(f"{key_option} {key_path}: no private key in it; {where}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        # A callback rather than None: OpenSSL would otherwise prompt on the terminal.
        context.load_cert_chain(certfile, keyfile, password=_refuse_password)
    except _EncryptedKey:
        raise _Failure(
            f"{key_option} {key_path}: the private key is encrypted; "
            f"decrypt it first (openssl pkey -in {key_path} -out plain-key.pem)"
        ) from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise _Failure(
                f"{key_option} {key_path}: the private key does not match --certfile {certfile}"
            ) from exc
        raise _Failure(f"cannot load --certfile {certfile}: {exc.reason or exc}") from exc
    except OSError as exc:  # The file changed between the two reads.
        raise _Failure(f"cannot load --certfile {certfile}: {_reason(exc)}") from exc
    return context


def _read_file(option: str, path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise _Failure(f"cannot read {option} {path}: {_reason(exc)}") from exc


def _refuse_password() -> bytes:
    raise _EncryptedKey


async def _demo(args: argparse.Namespace, out: _Output) -> None:
    out.check_open()
    async with serve(delay=DEMO_DELAY) as base_url:
        _note(f"loopback server at {base_url}; asking it to echo a message")
        start = time.perf_counter()
        arrivals: list[float] = []
        size = 0
        pieces = Acytoo.create_async_generator(
            MODEL, [{"role": "user", "content": DEMO_PROMPT}], base_url=base_url
        )
        async with aclosing(pieces):
            async for piece in pieces:
                arrivals.append(time.perf_counter())
                size += len(piece.encode("utf-8"))
                out.write(piece)
        out.write("\n")
    out.write(_summary(start, arrivals, size) + "\n")


def _summary(start: float, arrivals: list[float], size: int) -> str:
    """One line: pieces, bytes, time to first piece, median and p99 gap between pieces."""
    if not arrivals:
        return "received no pieces"
    gaps = sorted(b - a for a, b in pairwise(arrivals))
    first = (arrivals[0] - start) * 1000
    median = statistics.median(gaps) * 1000 if gaps else 0.0
    p99 = gaps[min(len(gaps) - 1, round(0.99 * (len(gaps) - 1)))] * 1000 if gaps else 0.0
    return (
        f"pieces: {len(arrivals)}  bytes: {size}  first piece: {first:.1f} ms  "
        f"gap median: {median:.1f} ms  gap p99: {p99:.1f} ms"
    )


def _exit_status(exc: BaseException, out: _Output) -> int:
    """Report ``exc`` in at most one line on stderr and choose the exit status."""
    leaves = list(_leaves(exc))
    if any(isinstance(leaf, KeyboardInterrupt) for leaf in leaves):
        out.end_line()
        return EXIT_INTERRUPTED
    if any(isinstance(leaf, _OutputClosed) for leaf in leaves):
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    first = leaves[0]
    if isinstance(first, SystemExit):  # argparse: --help, --version, usage errors.
        return _system_exit_status(first)
    out.end_line()
    if _debug():
        with suppress(Exception):
            traceback.print_exception(exc)
    if isinstance(first, _Failure):
        _say(str(first))
        if isinstance(first, _OutputFailed):
            _silence_stdout()
    elif isinstance(first, (AcytooError, OSError)):
        _say(describe_error(first))
    else:
        hint = "" if _debug() else f"; {DEBUG_VARIABLE}=1 shows the traceback"
        _say(f"unexpected {describe_error(first)} (a bug: please report it{hint})")
    return EXIT_ERROR


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
    _say(str(exc.code))
    return EXIT_ERROR


def _flush_stdout(status: int) -> int:
    """Flush what argparse printed (help, version) while a broken pipe can still be told apart."""
    if sys.stdout is None or status == EXIT_BROKEN_PIPE:
        return status
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE if status == EXIT_OK else status
    except (OSError, ValueError) as exc:
        _say(f"cannot write to standard output: {_reason(exc)}")
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


def _reason(exc: BaseException) -> str:
    """An OSError's text without its ``[Errno N]`` prefix; any other error's message."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _debug() -> bool:
    return os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")


def _say(text: str) -> None:
    """One error line on stderr: ``acytoo-raw: <text>``, escaped."""
    _note(f"{PROG}: {text}")


def _note(text: str) -> None:
    """One line on stderr, escaped; nothing when stderr is closed or broken."""
    stream = sys.stderr
    if stream is None:  # Started with descriptor 2 closed: print() would fall back to stdout.
        return
    with suppress(OSError, ValueError):
        stream.write(printable(text) + "\n")
        stream.flush()


if __name__ == "__main__":
    sys.exit(main())
