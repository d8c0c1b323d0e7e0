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
what runs before :func:`main` can catch anything: Python's start-up, the
package's ``__init__`` and this module's stdlib imports (some 40 ms on a busy
machine); a Ctrl-C there is Python's own ``KeyboardInterrupt`` traceback.
From :func:`main` on, Ctrl-C is held back until the event loop runs
(:func:`~acytoo_raw._cli_format.sigint_held`), so the imports of the engine,
anyio and trio, and the building of the loop, cannot be cut in half.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
import time
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from functools import partial
from itertools import pairwise
from typing import TYPE_CHECKING, NoReturn

from . import __version__
from ._cli_format import (
    DEBUG_VARIABLE,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    Failure,
    Output,
    SigintGate,
    describe_error,
    error_text,
    exit_status,
    flush_stdout,
    note,
    printable,
    sigint_held,
)
from ._exceptions import ConnectError, ConnectTimeout, LocalProtocolError, TLSError

# The engine, the server, anyio and ssl are imported inside the functions that use them,
# all under main()'s Ctrl-C hold: the imports that run before main() can catch anything
# stay short, so a Ctrl-C during start-up ends as status 130 rather than Python's traceback.
if TYPE_CHECKING:
    import ssl

__all__ = ["main"]

MODEL = "gpt-3.5-turbo"
DEMO_PROMPT = (
    "Streaming piece by piece over a raw socket: anyio for TCP and TLS, h11 for HTTP/1.1, "
    "and an incremental decoder so that Привет, 你好 and 👋 arrive whole."
)
# Between two demo pieces: long enough to watch the stream, short enough to finish in ~1 s.
DEMO_DELAY = 0.03
BASE_URL_VARIABLE = "ACYTOO_BASE_URL"
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


class _EncryptedKey(Exception):
    """Raised from the password callback: the server's private key is encrypted."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (see the module docstring)."""
    out = Output()
    try:
        with sigint_held() as gate:
            import anyio

            args = _parse(argv)
            anyio.run(partial(_run, args, out, gate), backend=args.backend)
        status = EXIT_OK
    except BaseException as exc:  # Every way out, Ctrl-C and argparse's exits too, gets a status.
        status = exit_status(exc, out)
    return flush_stdout(status)


async def _run(args: argparse.Namespace, out: Output, gate: SigintGate) -> None:
    gate.open()  # The loop is up and handles Ctrl-C itself, as a cancellation.
    try:
        await args.handler(args, out)
    finally:
        gate.close()  # Held again while the loop is taken down.


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors escaped like every other line on stderr."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {printable(message)}\n")


def _parser() -> _Parser:
    from .provider import Acytoo

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
    from .provider import Acytoo

    value = os.environ.get(BASE_URL_VARIABLE, "").strip()
    if not value:  # Unset and blank are the same, as for the proxy variables.
        return Acytoo.url
    try:
        return _base_url(value)
    except argparse.ArgumentTypeError as exc:
        parser.error(f"${BASE_URL_VARIABLE}: {exc}")


def _base_url(text: str) -> str:
    """argparse type of ``--base-url``: refuse what the client would refuse, saying what fits."""
    from ._urls import check_base_url

    try:
        check_base_url(text)
    except LocalProtocolError as exc:
        raise argparse.ArgumentTypeError(f"expected a URL like {EXAMPLE_BASE_URL}: {exc}") from None
    return text


def _proxy_url(text: str) -> str:
    """argparse type of ``--proxy``; the message never repeats the URL (it may hold a password)."""
    from ._urls import parse_proxy_url

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


def _completion(args: argparse.Namespace) -> AsyncGenerator[str, None]:
    """The provider call behind ``chat``: the one place that maps options onto it."""
    from ._network import ssl_context_from_cafile
    from ._timeouts import Timeout
    from .provider import Acytoo

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


async def _chat(args: argparse.Namespace, out: Output) -> None:
    from .provider import Acytoo

    out.check_open()
    pieces = _completion(args)
    try:
        async with aclosing(pieces):
            async for piece in pieces:
                out.write(piece)
    except (ConnectError, ConnectTimeout, TLSError) as exc:
        if args.base_url != Acytoo.url:
            raise
        raise Failure(f"{describe_error(exc)}; {OFFLINE_HINT}") from exc
    out.write("\n")


async def _serve(args: argparse.Namespace, out: Output) -> None:
    from .server import COMPLETIONS_PATH, serve_forever

    context = _server_ssl_context(args.certfile, args.keyfile)
    listening = False

    def announce(url: str) -> None:
        nonlocal listening
        listening = True
        note(f"serving {url}{COMPLETIONS_PATH} (Ctrl-C to stop)")

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
        raise Failure(f"cannot listen on {host}:{args.port}: {error_text(exc)}") from exc


def _server_ssl_context(certfile: str | None, keyfile: str | None) -> ssl.SSLContext | None:
    """The server's TLS context, or ``None`` for plain HTTP; each problem named with its file.

    Raises:
        Failure: a file cannot be read, holds no certificate or no key, the
            key is encrypted or belongs to another certificate.
    """
    if certfile is None:
        return None
    import ssl

    cert_pem = _read_file("--certfile", certfile)
    key_option, key_path, key_pem = "--certfile", certfile, cert_pem
    if keyfile is not None:
        key_option, key_path, key_pem = "--keyfile", keyfile, _read_file("--keyfile", keyfile)
    if b"-----BEGIN CERTIFICATE-----" not in cert_pem:
        raise Failure(f"--certfile {certfile}: no PEM certificate in it")
    if b"PRIVATE KEY-----" not in key_pem:
        where = "pass its key with --keyfile" if keyfile is None else "expected a PEM private key"
        raise Failure(f"{key_option} {key_path}: no private key in it; {where}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        # A callback rather than None: OpenSSL would otherwise prompt on the terminal.
        context.load_cert_chain(certfile, keyfile, password=_refuse_password)
    except _EncryptedKey:
        raise Failure(
            f"{key_option} {key_path}: the private key is encrypted; "
            f"decrypt it first (openssl pkey -in {key_path} -out plain-key.pem)"
        ) from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise Failure(
                f"{key_option} {key_path}: the private key does not match --certfile {certfile}"
            ) from exc
        raise Failure(f"cannot load --certfile {certfile}: {exc.reason or exc}") from exc
    except OSError as exc:  # The file changed between the two reads.
        raise Failure(f"cannot load --certfile {certfile}: {error_text(exc)}") from exc
    return context


def _read_file(option: str, path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise Failure(f"cannot read {option} {path}: {error_text(exc)}") from exc


def _refuse_password() -> bytes:
    raise _EncryptedKey


async def _demo(args: argparse.Namespace, out: Output) -> None:
    from .provider import Acytoo
    from .server import serve

    out.check_open()
    async with serve(delay=DEMO_DELAY) as base_url:
        note(f"loopback server at {base_url}; asking it to echo a message")
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
    import statistics

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


if __name__ == "__main__":
    sys.exit(main())
