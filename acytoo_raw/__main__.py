"""Command line: ``chat`` streams an answer, ``serve`` runs the loopback server,
``demo`` does both in one process with nothing to configure."""

from __future__ import annotations

import argparse
import math
import os
import ssl
import statistics
import sys
import time
from collections.abc import Sequence
from contextlib import aclosing
from functools import partial
from itertools import pairwise

import anyio

from ._exceptions import AcytooError
from ._network import ssl_context_from_cafile
from ._timeouts import Timeout
from .provider import Acytoo
from .server import serve, serve_forever

__all__ = ["main"]

DEMO_PROMPT = (
    "Streaming piece by piece over a raw socket: anyio for TCP and TLS, h11 for HTTP/1.1, "
    "and an incremental decoder so that Привет, 你好 and 👋 arrive whole."
)
# Between two demo pieces: long enough to watch the stream, short enough to finish in ~1 s.
DEMO_DELAY = 0.03
BASE_URL_VARIABLE = "ACYTOO_BASE_URL"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        anyio.run(partial(args.handler, args), backend=args.backend)
    except AcytooError as exc:
        print(f"acytoo-raw: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # A --cafile that can't be read, an address already taken.
        print(f"acytoo-raw: {exc}", file=sys.stderr)
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="acytoo-raw", description="Raw-socket streaming client for the Acytoo chat API."
    )
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    commands = parser.add_subparsers(dest="command", required=True)

    chat = commands.add_parser("chat", help="stream the answer to a message to stdout")
    chat.add_argument("message")
    chat.add_argument(
        "--base-url",
        default=os.environ.get(BASE_URL_VARIABLE) or Acytoo.url,
        help=f"server to ask (default: ${BASE_URL_VARIABLE} or {Acytoo.url}, which is offline)",
    )
    chat.add_argument("--proxy", help="http://[user:pass@]host:port or https://... CONNECT proxy")
    chat.add_argument(
        "--no-proxy",
        action="store_true",
        help="ignore HTTPS_PROXY/HTTP_PROXY/ALL_PROXY from the environment",
    )
    chat.add_argument("--temperature", type=_finite, default=0.5)
    chat.add_argument("--timeout", type=_seconds, help="seconds for connect, read and write")
    chat.add_argument("--cafile", help="PEM file of CA certificates to trust instead of the system")
    chat.add_argument("--proxy-cafile", help="PEM file of CA certificates for an https:// proxy")
    chat.set_defaults(handler=_chat)

    server = commands.add_parser("serve", help="run the Acytoo-compatible loopback server")
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=8000)
    server.add_argument("--delay", type=_seconds, default=0.05, help="seconds between pieces")
    server.add_argument(
        "--piece-size", type=_positive_int, help="characters per piece (default: words)"
    )
    server.add_argument("--certfile", help="PEM certificate chain: serve https")
    server.add_argument("--keyfile", help="PEM private key for --certfile")
    server.set_defaults(handler=_serve)

    demo = commands.add_parser("demo", help="serve on loopback and stream a reply through it")
    demo.set_defaults(handler=_demo)
    return parser


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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1: {text!r}")
    return value


async def _chat(args: argparse.Namespace) -> None:
    if args.proxy is not None and args.no_proxy:
        raise SystemExit("acytoo-raw: --proxy and --no-proxy exclude each other")
    proxy_context = None
    if args.proxy_cafile:
        proxy_context = ssl_context_from_cafile(args.proxy_cafile)
    pieces = Acytoo.create_async_generator(
        "gpt-3.5-turbo",
        [{"role": "user", "content": args.message}],
        args.proxy,
        base_url=args.base_url,
        timeout=Timeout.of(args.timeout),
        cafile=args.cafile,
        proxy_ssl_context=proxy_context,
        trust_env=not args.no_proxy,
        temperature=args.temperature,
    )
    async with aclosing(pieces):
        async for piece in pieces:
            sys.stdout.write(piece)
            sys.stdout.flush()
    sys.stdout.write("\n")


async def _serve(args: argparse.Namespace) -> None:
    context = None
    if args.certfile:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.certfile, args.keyfile)

    def announce(url: str) -> None:
        print(f"serving {url}/api/completions (Ctrl-C to stop)", file=sys.stderr, flush=True)

    await serve_forever(
        args.host,
        args.port,
        delay=args.delay,
        piece_size=args.piece_size,
        ssl_context=context,
        on_ready=announce,
    )


async def _demo(args: argparse.Namespace) -> None:
    async with serve(delay=DEMO_DELAY) as base_url:
        print(f"loopback server at {base_url}; asking it to echo a message", file=sys.stderr)
        start = time.perf_counter()
        arrivals: list[float] = []
        size = 0
        pieces = Acytoo.create_async_generator(
            "gpt-3.5-turbo", [{"role": "user", "content": DEMO_PROMPT}], base_url=base_url
        )
        async with aclosing(pieces):
            async for piece in pieces:
                arrivals.append(time.perf_counter())
                size += len(piece.encode("utf-8"))
                sys.stdout.write(piece)
                sys.stdout.flush()
        sys.stdout.write("\n")
    print(_summary(start, arrivals, size))


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


if __name__ == "__main__":
    sys.exit(main())
