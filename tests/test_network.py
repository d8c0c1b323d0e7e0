"""The socket layer: options, single-write requests, stream plumbing, error translation."""

from __future__ import annotations

import errno
import os
import pathlib
import socket
import ssl
import sys

import anyio
import pytest

import acytoo_raw
from acytoo_raw import ConnectError, LocalProtocolError, RemoteProtocolError, TLSError
from acytoo_raw._network import (
    PrefixedStream,
    SocketStream,
    _connect_socket,
    connect_tcp,
    ssl_context_from_cafile,
    translate_errors,
)
from tests.peers import read_request, response, scripted_server

BOUND = 10.0


@pytest.mark.anyio
async def test_connected_socket_has_nodelay_and_is_non_blocking() -> None:
    async with scripted_server(lambda log: read_request) as (base, _):  # type: ignore[arg-type,return-value]
        port = int(base.rsplit(":", 1)[1])
        with anyio.fail_after(BOUND):
            stream = await connect_tcp("127.0.0.1", port)
        async with stream:
            sock = stream.socket
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            assert sock.getblocking() is False


@pytest.mark.anyio
async def test_request_head_and_body_leave_in_one_write(monkeypatch: pytest.MonkeyPatch) -> None:
    writes: list[bytes] = []
    original = SocketStream.send

    async def recording_send(self: SocketStream, item: bytes) -> None:
        writes.append(item)
        await original(self, item)

    monkeypatch.setattr(SocketStream, "send", recording_send)

    async def answer(stream: anyio.abc.ByteStream) -> None:
        await read_request(stream)
        await stream.send(response(b"ok"))

    async with scripted_server(lambda log: answer) as (base, _):
        with anyio.fail_after(BOUND):
            async for _ in acytoo_raw.stream_bytes(base, json={"messages": []}):
                pass
    assert len(writes) == 1
    assert writes[0].startswith(b"POST / HTTP/1.1\r\n")
    assert writes[0].endswith(b'{"messages":[]}')


@pytest.mark.anyio
async def test_prefixed_stream_returns_the_prefix_first() -> None:
    left, right = socket.socketpair()
    right.sendall(b"tail")
    right.close()
    async with SocketStream(_non_blocking(left)) as inner:
        stream = PrefixedStream(inner, b"head")
        with anyio.fail_after(BOUND):
            assert await stream.receive(2) == b"he"
            assert await stream.receive() == b"ad"
            assert await stream.receive() == b"tail"
            with pytest.raises(anyio.EndOfStream):
                await stream.receive()


def _non_blocking(sock: socket.socket) -> socket.socket:
    sock.setblocking(False)
    return sock


@pytest.mark.anyio
async def test_unresolvable_host_is_connect_error() -> None:
    with pytest.raises(ConnectError, match="resolve"), anyio.fail_after(BOUND):
        await connect_tcp("no-such-host.invalid", 80)


def test_cafile_that_cannot_be_read_is_local_error_naming_it() -> None:
    with pytest.raises(LocalProtocolError, match=r"/no/such\.pem"):
        ssl_context_from_cafile("/no/such.pem")


def test_cafile_without_certificates_is_local_error(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "empty.pem"
    path.write_text("not a certificate\n")
    with pytest.raises(LocalProtocolError, match=r"empty\.pem"):
        ssl_context_from_cafile(str(path))


@pytest.mark.parametrize(
    ("raised", "phase", "expected"),
    [
        (anyio.EndOfStream(), "read", RemoteProtocolError),
        (ConnectionResetError(104, "reset"), "read", RemoteProtocolError),
        (ConnectionResetError(104, "reset"), "connect", ConnectError),
        (ssl.SSLError(1, "bad record"), "read", TLSError),
        (anyio.BusyResourceError("reading from"), "read", LocalProtocolError),
        (anyio.ClosedResourceError(), "read", RemoteProtocolError),
    ],
)
def test_foreign_errors_are_translated_per_phase(
    raised: Exception, phase: str, expected: type[Exception]
) -> None:
    with pytest.raises(expected) as caught, translate_errors(phase):  # type: ignore[arg-type]
        raise raised
    assert caught.value.__cause__ is raised


def test_our_error_wrapped_by_anyio_tls_comes_out_unwrapped() -> None:
    ours = acytoo_raw.ReadTimeout("silent")
    wrapped = anyio.BrokenResourceError()
    wrapped.__cause__ = ours
    with pytest.raises(acytoo_raw.ReadTimeout) as caught, translate_errors("read"):
        raise wrapped
    assert caught.value is ours


def test_ca_file_that_is_a_fifo_is_refused_without_blocking(tmp_path: pathlib.Path) -> None:
    fifo = tmp_path / "ca.pem"
    os.mkfifo(fifo)
    # Opening a FIFO with no writer would block forever; it must not be opened at all.
    with pytest.raises(LocalProtocolError, match="not a regular file"):
        ssl_context_from_cafile(str(fifo))


def test_ca_file_context_is_built_once_per_file_version(ca_file: str) -> None:
    first = ssl_context_from_cafile(ca_file)
    assert ssl_context_from_cafile(ca_file) is first
    path = pathlib.Path(ca_file)
    path.write_bytes(path.read_bytes() + b"\n")  # A new version of the file.
    assert ssl_context_from_cafile(ca_file) is not first


# --- connecting without a loop turn ------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.skipif(
    sys.platform != "linux", reason="Linux finishes a loopback handshake in connect()"
)
async def test_loopback_connect_needs_no_wait_for_writability(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def no_wait(_: object) -> None:
        raise AssertionError("waited for writability")

    monkeypatch.setattr(anyio, "wait_writable", no_wait)
    with socket.create_server(("127.0.0.1", 0)) as server, anyio.fail_after(BOUND):
        stream = await connect_tcp("127.0.0.1", server.getsockname()[1])
        async with stream:
            assert stream.socket.getpeername() == server.getsockname()


@pytest.mark.anyio
async def test_refused_connect_is_connect_error_naming_the_reason() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    with (
        pytest.raises(ConnectError, match=r"127\.0\.0\.1:\d+: .*[Rr]efused"),
        anyio.fail_after(BOUND),
    ):
        await connect_tcp("127.0.0.1", port)


class _SlowHandshake:
    """A socket whose handshake is still under way after connect() (a distant peer)."""

    def __init__(self, real: socket.socket, outcome: int) -> None:
        self._real = real
        self._outcome = outcome
        self.asked: list[str] = []

    def fileno(self) -> int:
        return self._real.fileno()

    def connect(self, address: object) -> None:
        self.asked.append("connect")
        raise BlockingIOError(errno.EINPROGRESS, "in progress")

    def connect_ex(self, address: object) -> int:
        self.asked.append("connect_ex")
        return errno.EALREADY

    def getsockopt(self, level: int, option: int) -> int:
        self.asked.append("SO_ERROR")
        return self._outcome


@pytest.mark.anyio
@pytest.mark.parametrize("outcome", [0, errno.ECONNREFUSED])
async def test_connect_still_in_progress_waits_then_reads_the_outcome(outcome: int) -> None:
    left, right = socket.socketpair()
    with left, right, anyio.fail_after(BOUND):
        slow = _SlowHandshake(left, outcome)
        if outcome:
            with pytest.raises(ConnectionRefusedError):
                await _connect_socket(slow, ("192.0.2.1", 80))  # type: ignore[arg-type]
        else:
            await _connect_socket(slow, ("192.0.2.1", 80))  # type: ignore[arg-type]
        assert slow.asked == ["connect", "connect_ex", "SO_ERROR"]
