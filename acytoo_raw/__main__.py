"""Command line: ``chat`` streams an answer, ``serve`` runs the loopback server,
``demo`` does both in one process with nothing to configure.

``chat`` speaks either API: ``--api acytoo`` (the default; ``POST
<base>/api/completions``, a plain-text body) or ``--api openai`` (``POST
<base>/chat/completions`` with ``base`` ending in ``/v1``, server-sent events),
through :class:`~acytoo_raw.Acytoo` or :class:`~acytoo_raw.OpenAIChat` on one
:class:`~acytoo_raw.Client` built from the options (:func:`_completion` is the
one place that maps options onto the call). An API key is cut out of every
line on stderr (:meth:`~acytoo_raw._cli_format.Output.hide`). ``--timings``
adds one ``timings:`` line on stderr after the answer (:func:`_timings_line`).

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
import re
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing, asynccontextmanager
from functools import partial
from itertools import pairwise
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

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
    redact,
    sigint_held,
)
from ._exceptions import (
    ConnectError,
    ConnectTimeout,
    HTTPStatusError,
    LocalProtocolError,
    TLSError,
)

# The engine, the server, anyio and ssl are imported inside the functions that use them,
# all under main()'s Ctrl-C hold: the imports that run before main() can catch anything
# stay short, so a Ctrl-C during start-up ends as status 130 rather than Python's traceback.
if TYPE_CHECKING:
    import ssl

    from ._client import Client
    from ._response import Response, Timings

__all__ = ["main"]

MODEL = "gpt-3.5-turbo"
# --api openai without --model: OpenAI's small chat model; local servers take any name
# (or only the one they loaded, which the user then names).
OPENAI_MODEL = "gpt-4o-mini"
# The Acytoo payload's own default, kept when --temperature is not given.
ACYTOO_TEMPERATURE = 0.5
APIS = ("acytoo", "openai")
DEMO_PROMPT = (
    "Streaming piece by piece over a raw socket: anyio for TCP and TLS, h11 for HTTP/1.1, "
    "and an incremental decoder so that Привет, 你好 and 👋 arrive whole."
)
# Between two demo pieces: long enough to watch the stream, short enough to finish in ~1 s.
DEMO_DELAY = 0.03
BASE_URL_VARIABLE = "ACYTOO_BASE_URL"
EXAMPLE_BASE_URL = "http://127.0.0.1:8000"
# The openai SDK's variables and default, so a shell set up for it works unchanged.
OPENAI_BASE_URL_VARIABLE = "OPENAI_BASE_URL"
API_KEY_VARIABLE = "OPENAI_API_KEY"
OPENAI_BASE_URL = "https://api.openai.com/v1"
EXAMPLE_OPENAI_BASE_URL = "http://127.0.0.1:8000/v1"
# The last path segment of an OpenAI-style API root: v1, v1beta, v2 ...
_VERSION_SEGMENT = re.compile(r"/v[0-9]+[a-z0-9]*/?$")
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
  {BASE_URL_VARIABLE}  default for chat --base-url (--api acytoo)
  {OPENAI_BASE_URL_VARIABLE}  default for chat --base-url (--api openai)
  {API_KEY_VARIABLE}  default for chat --api-key (--api openai); never printed
  HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY  proxies for chat (unless --no-proxy)
  {DEBUG_VARIABLE}=1  print the traceback of an error"""

CHAT_EPILOG = f"""\
examples:
  {PROG} chat "Hi" --base-url {EXAMPLE_BASE_URL}
  {PROG} chat "Hi" --api openai --base-url {EXAMPLE_OPENAI_BASE_URL} --timings
  {API_KEY_VARIABLE}=... {PROG} chat "Hi" --api openai --model {OPENAI_MODEL}

environment:
  {BASE_URL_VARIABLE}  default --base-url for --api acytoo
  {OPENAI_BASE_URL_VARIABLE}, {API_KEY_VARIABLE}  default --base-url and --api-key for --api openai
  HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY  proxies (unless --no-proxy)

Standard output holds only the answer; errors and --timings go to stderr."""


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
        description="Raw-socket streaming client for the Acytoo and OpenAI-compatible chat APIs.",
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

    chat = commands.add_parser(
        "chat",
        help="stream the answer to a message to stdout",
        epilog=CHAT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    chat.add_argument("message", help="the user message to send")
    chat.add_argument(
        "--api",
        choices=APIS,
        default="acytoo",
        help="the API the server speaks: acytoo (POST BASE/api/completions, a plain-text "
        "answer; the default) or openai (POST BASE/chat/completions, server-sent events: "
        "vLLM, llama.cpp, Ollama, LM Studio, LiteLLM, OpenAI, `acytoo-raw serve`)",
    )
    chat.add_argument(
        "--base-url",
        type=_base_url,
        help=f"server to ask. acytoo: its root, like {EXAMPLE_BASE_URL} "
        f"(default: ${BASE_URL_VARIABLE}, else {Acytoo.url}, which is offline). "
        f"openai: the API root including /v1, like {EXAMPLE_OPENAI_BASE_URL} "
        f"(default: ${OPENAI_BASE_URL_VARIABLE}, else {OPENAI_BASE_URL})",
    )
    chat.add_argument(
        "--model",
        help=f"model to ask, with --api openai (default: {OPENAI_MODEL}); refused with "
        f"--api acytoo, whose payload always names {MODEL}",
    )
    chat.add_argument(
        "--api-key",
        type=_api_key,
        metavar="KEY",
        help=f"with --api openai, sent as 'Authorization: Bearer KEY' (default: "
        f"${API_KEY_VARIABLE}; '' sends none). Prefer the variable: other users can see "
        "a command line. Never printed, not even in errors; refused with --api acytoo",
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
        help=f"sampling temperature (default: {ACYTOO_TEMPERATURE} in the acytoo payload; "
        "with openai, sent only when given, so the server's own default applies)",
    )
    chat.add_argument(
        "--timeout",
        type=_seconds,
        help="seconds each for connecting, each read and each write (default: the library's)",
    )
    chat.add_argument("--cafile", help="PEM file of CA certificates to trust instead of the system")
    chat.add_argument("--proxy-cafile", help="PEM file of CA certificates for an https:// proxy")
    chat.add_argument(
        "--timings",
        action="store_true",
        help="after the answer, one line on stderr, curl -w style: 'timings:' then "
        "name=value pairs. Milliseconds since the call began at which each phase ended "
        "(connected, tunnel, tls, sent, head, first_piece: first body piece or event, "
        "first_token: first text, end; '-' where it did not happen), pieces (text pieces "
        "printed) with gap_median and gap_p99 between them (timed here as each piece "
        "arrives), reused and tls_resumed (yes/no); with openai also finish_reason, "
        "prompt_tokens and completion_tokens when the server sent them. Not printed "
        "after an error",
    )
    chat.set_defaults(handler=_chat, command_parser=chat)

    server = commands.add_parser(
        "serve", help="run the loopback server (Acytoo and OpenAI-compatible APIs, echo replies)"
    )
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

    demo = commands.add_parser(
        "demo", help="serve on loopback and stream a reply through it in both APIs"
    )
    demo.set_defaults(handler=_demo, command_parser=demo)
    return parser


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parsed options, checked as a whole; a usage error exits with status 2."""
    parser = _parser()
    args = parser.parse_args(argv)
    command: _Parser = args.command_parser
    if args.command == "chat":
        _check_chat(args, command)
    if args.command == "serve" and args.keyfile is not None and args.certfile is None:
        command.error("argument --keyfile: needs --certfile (the certificate the key belongs to)")
    if args.backend == "trio":
        try:
            importlib.import_module("trio")
        except ImportError as exc:
            problem = "is not installed" if exc.name == "trio" else f"cannot be imported ({exc})"
            parser.error(f"--backend trio: the trio package {problem}; install it: {TRIO_INSTALL}")
    return args


def _check_chat(args: argparse.Namespace, parser: _Parser) -> None:
    """Fill in ``chat``'s defaults for its API; refuse options the API has no use for."""
    from .provider import Acytoo

    if args.api == "acytoo":
        refusals = (
            ("--model", args.model, f"the Acytoo payload always names {MODEL}"),
            ("--api-key", args.api_key, "the Acytoo API takes no key"),
        )
        for option, value, reason in refusals:
            if value is not None:
                parser.error(f"argument {option}: only with --api openai ({reason})")
        if args.base_url is None:
            args.base_url = _base_url_from_environment(parser, BASE_URL_VARIABLE, Acytoo.url)
        if args.temperature is None:
            args.temperature = ACYTOO_TEMPERATURE
        return
    if args.base_url is None:
        args.base_url = _base_url_from_environment(
            parser, OPENAI_BASE_URL_VARIABLE, OPENAI_BASE_URL
        )
    if args.model is None:
        args.model = OPENAI_MODEL
    if args.api_key is None:
        value = os.environ.get(API_KEY_VARIABLE, "").strip()
        try:
            args.api_key = _api_key(value)
        except argparse.ArgumentTypeError as exc:
            parser.error(f"${API_KEY_VARIABLE}: {exc}")
    if args.api_key == "":
        args.api_key = None  # Sends no authorization header, as OpenAIChat does for "".


def _base_url_from_environment(parser: _Parser, variable: str, default: str) -> str:
    value = os.environ.get(variable, "").strip()
    if not value:  # Unset and blank are the same, as for the proxy variables.
        return default
    try:
        return _base_url(value)
    except argparse.ArgumentTypeError as exc:
        parser.error(f"${variable}: {exc}")


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


def _api_key(text: str) -> str:
    """argparse type of ``--api-key``: what a header can carry. The message never shows it."""
    if text and (text != text.strip() or not all(" " <= char <= "~" for char in text)):
        raise argparse.ArgumentTypeError(
            "must be printable ASCII without leading or trailing spaces (the key is not shown)"
        )
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


class _Reply(Protocol):
    """A streamed answer as ``chat`` reads it: text pieces, then what the call learnt.

    :class:`~acytoo_raw.ChatStream` is one; :class:`_TextReply` the Acytoo form.
    """

    def __aiter__(self) -> AsyncIterator[str]: ...

    @property
    def timings(self) -> Timings | None: ...

    @property
    def first_token_time(self) -> float | None: ...

    @property
    def finish_reason(self) -> str | None: ...

    @property
    def usage(self) -> Mapping[str, Any] | None: ...


class _TextReply:
    """The Acytoo answer as a :class:`_Reply`: plain text, so the first piece is the first
    token, and there is no finish reason or usage."""

    finish_reason = None
    usage = None

    def __init__(self, pieces: AsyncIterator[str], seen: list[Timings]) -> None:
        self._pieces = pieces
        self._seen = seen

    def __aiter__(self) -> AsyncIterator[str]:
        return self._pieces

    @property
    def timings(self) -> Timings | None:
        return self._seen[-1] if self._seen else None

    @property
    def first_token_time(self) -> float | None:
        timings = self.timings
        return None if timings is None else timings.first_piece


def _recording_client(seen: list[Timings], **options: Any) -> Client:
    """A :class:`~acytoo_raw.Client` that appends each response's timings to ``seen``.

    The providers read the response themselves; this is how ``--timings``
    gets at its :class:`~acytoo_raw.Timings` without the CLI building the
    request. Defined here so that importing the CLI does not load the engine.
    """
    from ._client import Client

    class RecordingClient(Client):
        @asynccontextmanager
        async def open_stream(self, url: str, **kwargs: Any) -> AsyncIterator[Response]:
            async with super().open_stream(url, **kwargs) as response:
                seen.append(response.timings)
                yield response

    return RecordingClient(**options)


@asynccontextmanager
async def _completion(args: argparse.Namespace) -> AsyncIterator[_Reply]:
    """The provider call behind ``chat``: the one place that maps options onto it.

    One :class:`~acytoo_raw.Client` carries the transport options (proxy,
    CA files, timeout) for either API and is closed with the answer.
    """
    from ._network import ssl_context_from_cafile

    seen: list[Timings] = []
    client = _recording_client(
        seen,
        proxy=args.proxy,
        proxy_ssl_context=(
            None if args.proxy_cafile is None else ssl_context_from_cafile(args.proxy_cafile)
        ),
        trust_env=not args.no_proxy,
        timeout=args.timeout,
        ssl_context=None if args.cafile is None else ssl_context_from_cafile(args.cafile),
    )
    messages = [{"role": "user", "content": args.message}]
    async with client:
        if args.api == "openai":
            from .openai import OpenAIChat

            opened = OpenAIChat.stream(
                args.model,
                messages,
                base_url=args.base_url,
                api_key=args.api_key,
                client=client,
                temperature=args.temperature,
            )
            async with opened as chat:
                yield chat
        else:
            from .provider import Acytoo

            pieces = Acytoo.create_async_generator(
                MODEL,
                messages,
                base_url=args.base_url,
                client=client,
                temperature=args.temperature,
            )
            async with aclosing(pieces):
                yield _TextReply(pieces, seen)


async def _chat(args: argparse.Namespace, out: Output) -> None:
    out.hide(args.api_key)
    out.check_open()
    arrivals: list[float] = []
    line = None
    try:
        async with _completion(args) as reply:
            async for piece in reply:
                arrivals.append(time.perf_counter())
                out.write(piece)
            if args.timings:
                line = _timings_line(reply, arrivals, out.hidden)
    except (ConnectError, ConnectTimeout, TLSError, HTTPStatusError) as exc:
        hint = _hint(args, exc)
        if hint is None:
            raise
        raise Failure(f"{describe_error(exc, out.hidden)}; {hint}") from exc
    out.write("\n")
    if line is not None:
        note(line, out.hidden)


def _hint(args: argparse.Namespace, exc: Exception) -> str | None:
    """What to try, for the failures a wrong ``--api``/``--base-url``/key explains."""
    from .provider import Acytoo

    if not isinstance(exc, HTTPStatusError):
        return OFFLINE_HINT if args.api == "acytoo" and args.base_url == Acytoo.url else None
    versioned = _VERSION_SEGMENT.search(args.base_url) is not None
    if exc.status_code == 404 and args.api == "openai" and not versioned:
        # A base URL holds no credentials (refused when parsed): it can be shown.
        return (
            "OpenAI-compatible servers answer below /v1: "
            f"try --base-url {args.base_url.rstrip('/')}/v1"
        )
    if exc.status_code == 404 and args.api == "acytoo" and versioned:
        return (
            "a base URL ending in a version like /v1 is an OpenAI-style API root: "
            "pass --api openai, or the server's root for --api acytoo"
        )
    if exc.status_code == 401 and args.api == "openai" and args.api_key is None:
        return f"no API key was sent: set ${API_KEY_VARIABLE} or pass --api-key"
    return None


def _timings_line(reply: _Reply, arrivals: list[float], hidden: Sequence[str] = ()) -> str:
    """``timings:`` and ``name=value`` pairs, in milliseconds since the call began.

    Phases come from the response's :class:`~acytoo_raw.Timings`; pieces and
    their gaps from ``arrivals`` (``perf_counter()`` as each text piece came
    to the CLI). Server-sent words (the finish reason) have the secrets in
    ``hidden`` cut out, then are percent-encoded, so every pair stays one
    space-free token and an echoed key shows in no form.
    """
    from urllib.parse import quote

    timings = reply.timings
    phases = {
        name: None if timings is None else getattr(timings, name)
        for name in ("connected", "tunnel", "tls", "sent", "head", "first_piece")
    }
    phases["first_token"] = reply.first_token_time
    phases["end"] = None if timings is None else timings.end
    pairs = [f"{name}={_ms(value)}" for name, value in phases.items()]
    gaps = _gaps(arrivals)
    median, p99 = (None, None) if gaps is None else gaps
    pairs += [f"pieces={len(arrivals)}", f"gap_median={_ms(median)}", f"gap_p99={_ms(p99)}"]
    if timings is not None:
        pairs.append(f"reused={_yes_no(timings.reused)}")
        pairs.append(f"tls_resumed={_yes_no(timings.tls_resumed)}")
    if reply.finish_reason is not None:
        reason = redact(reply.finish_reason, hidden)
        pairs.append(f"finish_reason={quote(reason, safe='')}")
    usage = reply.usage or {}
    for name in ("prompt_tokens", "completion_tokens"):
        count = usage.get(name)
        if isinstance(count, int) and not isinstance(count, bool):
            pairs.append(f"{name}={count}")
    return "timings: " + " ".join(pairs)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f}ms"


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _gaps(times: list[float]) -> tuple[float, float] | None:
    """Median and p99 (nearest rank) of the gaps between ``times``; ``None`` under two."""
    import statistics

    gaps = sorted(b - a for a, b in pairwise(times))
    if not gaps:
        return None
    return statistics.median(gaps), gaps[min(len(gaps) - 1, round(0.99 * (len(gaps) - 1)))]


async def _serve(args: argparse.Namespace, out: Output) -> None:
    from .server import COMPLETIONS_PATH, serve_forever

    context = _server_ssl_context(args.certfile, args.keyfile)
    listening = False

    def announce(url: str) -> None:
        nonlocal listening
        listening = True
        note(f"serving {url}{COMPLETIONS_PATH} and {url}/v1 (Ctrl-C to stop)")

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
    from .server import serve

    out.check_open()
    async with serve(delay=DEMO_DELAY) as base_url:
        note(
            f"loopback server at {base_url}; asking it to echo a message, "
            "first as Acytoo (POST /api/completions: plain text)"
        )
        await _demo_acytoo(base_url, out)
        note("then as OpenAI (POST /v1/chat/completions: server-sent events)")
        await _demo_openai(f"{base_url}/v1", out)


async def _demo_acytoo(base_url: str, out: Output) -> None:
    from .provider import Acytoo

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


async def _demo_openai(base_url: str, out: Output) -> None:
    from .openai import OpenAIChat

    start = time.perf_counter()
    arrivals: list[float] = []
    size = 0
    opened = OpenAIChat.stream(
        OPENAI_MODEL,
        [{"role": "user", "content": DEMO_PROMPT}],
        base_url=base_url,
        stream_options={"include_usage": True},
    )
    async with opened as chat:
        async for piece in chat:
            arrivals.append(time.perf_counter())
            size += len(piece.encode("utf-8"))
            out.write(piece)
    out.write("\n")
    usage = chat.usage or {}
    extra = (
        f"  finish reason: {chat.finish_reason}  usage: {usage.get('prompt_tokens')} prompt "
        f"+ {usage.get('completion_tokens')} completion tokens"
    )
    out.write(_summary(start, arrivals, size) + extra + "\n")


def _summary(start: float, arrivals: list[float], size: int) -> str:
    """One line: pieces, bytes, time to first piece, median and p99 gap between pieces."""
    if not arrivals:
        return "received no pieces"
    first = (arrivals[0] - start) * 1000
    median, p99 = _gaps(arrivals) or (0.0, 0.0)
    return (
        f"pieces: {len(arrivals)}  bytes: {size}  first piece: {first:.1f} ms  "
        f"gap median: {median * 1000:.1f} ms  gap p99: {p99 * 1000:.1f} ms"
    )


if __name__ == "__main__":
    sys.exit(main())
