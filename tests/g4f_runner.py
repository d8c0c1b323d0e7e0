"""Drive ``acytoo_raw.Acytoo`` through the real g4f, offline; print one JSON report.

Run by tests/test_g4f.py in a subprocess (``python -m tests.g4f_runner
[--netns]``), so g4f is imported once and never into the pytest process.
Before anything else the process moves into a new network namespace with
only loopback up (``--netns``; needs root or unprivileged user namespaces,
and the report says which worked), and replaces the socket module's resolver
and ``connect`` with guards that refuse and record every non-loopback
destination. g4f's version check (a PyPI request) is turned off.

Then it serves the Acytoo loopback server and a raw peer answering
``500`` in helper threads, runs every case, and prints the report as the
last line of stdout: ``{"namespace": ..., "outbound": [...], "cases":
{name: {"ok", "pieces", "error", "error_module", "message", ...}}, ...}``.
"""

from __future__ import annotations

import asyncio
import ctypes
import faulthandler
import fcntl
import gc
import ipaddress
import json
import os
import socket
import struct
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, TextIO

# A hung case must not hang the test: dump every thread's stack and exit.
RUNNER_DEADLINE = 150.0
# Per-phase limit g4f passes on to the provider as timeout=: loopback answers at once.
CASE_TIMEOUT = 10

MODEL = "gpt-3.5-turbo"
HELLO = "Hello there, 世界 🌍"
ERROR_BODY = b'{"msg": "internal error from the test peer"}'

_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_IFREQ = "16sh22x"  # struct ifreq on Linux: name[16], short flags, union padding to 40 bytes.

OUTBOUND: list[str] = []
WARNINGS: list[str] = []
UNRAISABLE: list[str] = []


def enter_network_namespace() -> str:
    """Move this (still single-threaded) process into a new network namespace."""
    if not sys.platform.startswith("linux"):
        return f"unavailable: {sys.platform}"
    libc = ctypes.CDLL(None, use_errno=True)
    error = 0
    for flags, name in ((_CLONE_NEWNET, "netns"), (_CLONE_NEWUSER | _CLONE_NEWNET, "user+netns")):
        if libc.unshare(flags) == 0:
            _loopback_up()
            return name
        error = ctypes.get_errno()
    return f"unavailable: {os.strerror(error)}"


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack(_IFREQ, b"lo", 0)
        flags = struct.unpack(_IFREQ, fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack(_IFREQ, b"lo", flags | _IFF_UP))


def _is_loopback(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def install_guards() -> None:
    """Refuse (and record) name lookups and connections to anything but loopback."""
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not _is_loopback(host):
            OUTBOUND.append(f"resolve {host!r}")
            raise socket.gaierror(socket.EAI_NONAME, f"g4f_runner: lookup of {host!r} refused")
        return real_getaddrinfo(host, *args, **kwargs)

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            OUTBOUND.append(f"connect {address!r}")
            raise ConnectionRefusedError(f"g4f_runner: connection to {address!r} refused")

    def connect(self: socket.socket, address: Any) -> None:
        check(self, address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(self, address)
        return real_connect_ex(self, address)

    socket.getaddrinfo = getaddrinfo
    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]


def record_warnings() -> None:
    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        WARNINGS.append(f"{category.__name__}: {message} ({filename}:{lineno})")

    def unraisable(hook: Any) -> None:
        UNRAISABLE.append(f"{hook.exc_type.__name__}: {hook.exc_value} in {hook.object!r}")

    warnings.simplefilter("always", ResourceWarning)
    warnings.showwarning = show
    sys.unraisablehook = unraisable


@contextmanager
def servers() -> Iterator[tuple[str, str]]:
    """Base URLs of the echoing loopback server and of a peer that answers 500."""
    from anyio.from_thread import start_blocking_portal

    from acytoo_raw.server import serve
    from tests.peers import response, script, scripted_server

    error = response(ERROR_BODY, status=b"500 Internal Server Error")
    with ExitStack() as stack:
        portal = stack.enter_context(start_blocking_portal())
        good = stack.enter_context(portal.wrap_async_context_manager(serve(delay=0.002)))
        bad, _ = stack.enter_context(
            portal.wrap_async_context_manager(scripted_server(script(error)))
        )
        yield good, bad


def run_case(case: Callable[[list[Any]], dict[str, Any] | None]) -> dict[str, Any]:
    """Run one case; what it yielded before any error is kept in ``pieces``.

    Text pieces are kept as they are; other objects g4f hands out (its
    ``ProviderInfo``, ``Usage``, ...) become ``{"object": <class name>}``.
    """
    pieces: list[Any] = []
    try:
        extra = case(pieces) or {}
    except Exception as exc:
        return {
            "ok": False,
            "pieces": _plain(pieces),
            "error": type(exc).__name__,
            "error_module": type(exc).__module__,
            "message": str(exc)[:500],
            "cause": type(exc.__cause__).__name__ if exc.__cause__ is not None else None,
        }
    return {"ok": True, "pieces": _plain(pieces), **extra}


def _plain(pieces: list[Any]) -> list[Any]:
    return [
        piece if isinstance(piece, str) else {"object": type(piece).__name__} for piece in pieces
    ]


def cases(base: str) -> dict[str, Callable[[list[Any]], dict[str, Any] | None]]:
    """Every way a g4f user calls a provider class, against ``base``."""
    import g4f  # type: ignore[import-untyped,import-not-found,unused-ignore]
    from g4f.client import AsyncClient, Client  # type: ignore[import-untyped,import-not-found,unused-ignore]
    from g4f.Provider import RetryProvider  # type: ignore[import-untyped,import-not-found,unused-ignore]

    from acytoo_raw import Acytoo

    messages = [{"role": "user", "content": HELLO}]
    common: dict[str, Any] = {"ignore_working": True, "base_url": base, "timeout": CASE_TIMEOUT}

    def chat_create(pieces: list[Any]) -> None:
        answer = g4f.ChatCompletion.create(MODEL, messages, provider=Acytoo, stream=False, **common)
        pieces.append(answer)

    def chat_create_stream(pieces: list[Any]) -> None:
        for piece in g4f.ChatCompletion.create(
            MODEL, messages, provider=Acytoo, stream=True, stream_timeout=CASE_TIMEOUT, **common
        ):
            pieces.append(piece)

    def chat_create_with_image(pieces: list[Any]) -> None:
        image = b"\x89PNG\r\n\x1a\n"
        pieces.append(
            g4f.ChatCompletion.create(MODEL, messages, provider=Acytoo, image=image, **common)
        )

    def chat_create_async(pieces: list[Any]) -> None:
        async def main() -> str:
            result = g4f.ChatCompletion.create_async(
                MODEL, messages, provider=Acytoo, stream=False, **common
            )
            answer: str = await result
            return answer

        pieces.append(asyncio.run(main()))

    def chat_create_async_stream(pieces: list[Any]) -> None:
        async def main() -> None:
            result = g4f.ChatCompletion.create_async(
                MODEL, messages, provider=Acytoo, stream=True, **common
            )
            async for piece in result:
                pieces.append(piece)

        asyncio.run(main())

    def chat_create_retry_provider(pieces: list[Any]) -> None:
        provider = RetryProvider([Acytoo], shuffle=False)
        for piece in g4f.ChatCompletion.create(
            MODEL, messages, provider=provider, stream=True, **common
        ):
            pieces.append(piece)

    def client(pieces: list[Any]) -> dict[str, Any]:
        # g4f hands api_key to every provider; Acytoo has no keys and ignores it.
        completions = Client(provider=Acytoo, base_url=base, api_key="sk-test").chat.completions
        result = completions.create(messages=messages, model=MODEL, timeout=CASE_TIMEOUT)
        pieces.append(result.choices[0].message.content)
        return {"provider": getattr(result, "provider", None)}

    def client_stream(pieces: list[Any]) -> None:
        completions = Client(provider=Acytoo, base_url=base).chat.completions
        for chunk in completions.create(
            messages=messages, model=MODEL, stream=True, timeout=CASE_TIMEOUT
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)

    def async_client(pieces: list[Any]) -> dict[str, Any]:
        async def main() -> Any:
            completions = AsyncClient(provider=Acytoo, base_url=base).chat.completions
            return await completions.create(messages=messages, model=MODEL, timeout=CASE_TIMEOUT)

        result = asyncio.run(main())
        pieces.append(result.choices[0].message.content)
        return {"provider": getattr(result, "provider", None)}

    def async_client_stream(pieces: list[Any]) -> None:
        async def main() -> None:
            completions = AsyncClient(provider=Acytoo, base_url=base).chat.completions
            stream = completions.create(
                messages=messages, model=MODEL, stream=True, stream_timeout=CASE_TIMEOUT
            )
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    pieces.append(chunk.choices[0].delta.content)

        asyncio.run(main())

    return {
        "chat_create": chat_create,
        "chat_create_stream": chat_create_stream,
        "chat_create_with_image": chat_create_with_image,
        "chat_create_async": chat_create_async,
        "chat_create_async_stream": chat_create_async_stream,
        "chat_create_retry_provider": chat_create_retry_provider,
        "client": client,
        "client_stream": client_stream,
        "async_client": async_client,
        "async_client_stream": async_client_stream,
    }


def checks_without_server() -> dict[str, Any]:
    """What g4f reads without sending: the working check, the registry, parameters."""
    import g4f  # type: ignore[import-untyped,import-not-found,unused-ignore]
    from g4f.client.service import get_model_and_provider  # type: ignore[import-untyped,import-not-found,unused-ignore]
    from g4f.Provider import ProviderLoader  # type: ignore[import-untyped,import-not-found,unused-ignore]

    from acytoo_raw import Acytoo

    def not_working(pieces: list[Any]) -> None:
        messages = [{"role": "user", "content": HELLO}]
        pieces.append(g4f.ChatCompletion.create(MODEL, messages, provider=Acytoo))

    # A name registered with g4f's provider loader is accepted wherever a
    # provider is (provider="Acytoo").
    ProviderLoader.loaded["Acytoo"] = Acytoo
    _, by_name = get_model_and_provider(MODEL, "Acytoo", stream=True, ignore_working=True)
    return {
        "not_working": run_case(not_working),
        "registry_by_name": by_name is Acytoo,
        "get_parameters_json": json.loads(json.dumps(Acytoo.get_parameters(as_json=True))),
        "get_parameters": sorted(Acytoo.get_parameters()),
    }


def guard_self_test() -> bool:
    """The guards refuse and record a lookup; the record is then dropped again."""
    try:
        socket.getaddrinfo("pypi.org", 443)
    except socket.gaierror:
        return bool(OUTBOUND) and OUTBOUND.pop() == "resolve 'pypi.org'"
    return False


def main() -> None:
    faulthandler.dump_traceback_later(RUNNER_DEADLINE, exit=True)
    namespace = enter_network_namespace() if "--netns" in sys.argv else "not asked"
    install_guards()
    record_warnings()
    report: dict[str, Any] = {
        "namespace": namespace,
        "interfaces": sorted(name for _, name in socket.if_nameindex()),
        "guard_works": guard_self_test(),
    }

    from acytoo_raw import Acytoo

    report["acytoo_raw_imports_g4f"] = any(name.split(".")[0] == "g4f" for name in sys.modules)
    import g4f  # type: ignore[import-untyped,import-not-found,unused-ignore]

    g4f.debug.version_check = False  # Its only network call at run time: PyPI's JSON API.
    report["g4f_version"] = g4f.__version__
    report.update(checks_without_server())
    with servers() as (good, bad):
        report["cases"] = {name: run_case(case) for name, case in cases(good).items()}
        report["error_cases"] = {name: run_case(case) for name, case in cases(bad).items()}
    gc.collect()
    report["live"] = Acytoo.__dict__.get("live")
    report["outbound"] = OUTBOUND
    report["warnings"] = WARNINGS
    report["unraisable"] = UNRAISABLE
    sys.stdout.flush()
    print(json.dumps(report, ensure_ascii=True))


if __name__ == "__main__":
    main()
