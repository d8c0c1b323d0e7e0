"""The benchmark's streaming server: its own process, one thread, one selector loop.

Paced streams are driven by a kernel timer (``timerfd``) at absolute deadlines, and every piece is
stamped with ``time.perf_counter_ns()`` just before its write, so a client can compute each
piece's latency. Burst streams (throughput) write large prebuilt blocks as fast as the socket
takes them. ``POST .../v1/chat/completions`` answers as an OpenAI-compatible server streams: a
role chunk, one paced content chunk per token, a finish chunk and ``data: [DONE]``. A request
with ``keepalive`` gets an answer without ``Connection: close`` and the connection waits for the
next request (closed after ``idle_ms`` of idleness when set, as uvicorn closes idle
connections). A ``multiprocessing`` pipe carries control messages: clock pings, CPU time, stop.
"""

from __future__ import annotations

import gc
import heapq
import itertools
import random
import selectors
import signal
import socket
import ssl
import time
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.connection import Connection
from typing import Literal

from benchmarks import system, wire
from benchmarks.server_io import Transport
from benchmarks.timerfd import KernelTimer

BACKLOG = 4096
MAX_HEAD = 64 * 1024
BLOB_BYTES = 1 << 20
BLOBS_PER_WAKE = 8
ACCEPTS_PER_WAKE = 512
HEAD_TIMEOUT_NS = 30_000_000_000
MAX_BODY = 1 << 20  # request bodies (chat messages) are read and dropped; bound them anyway
DRAIN_TIMEOUT_NS = 10_000_000_000
REAP_EVERY_NS = 1_000_000_000
MAX_LIFETIME_NS = 4 * 3600 * 1_000_000_000
_BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

State = Literal["head", "body", "paced", "burst", "closing", "draining", "closed"]


@dataclass(eq=False)
class _Conn:
    transport: Transport
    deadline_ns: int
    state: State = "head"
    inbox: bytearray = field(default_factory=bytearray)
    body_left: int = 0
    request: wire.StreamRequest | None = None
    keep: bool = False  # this response leaves the connection open for the next request
    template: bytes = b""
    stamp_at: int = 0  # offset of the stamp placeholder in ``template``
    sent: int = 0
    blobs: list[bytes] = field(default_factory=list)
    mask: int = selectors.EVENT_READ
    idle_due: int = 0  # heap deadline of the idle close (0: none armed)


class StreamServer:
    def __init__(self, control: Connection, tls_context: ssl.SSLContext) -> None:
        self._control = control
        self._selector = selectors.DefaultSelector()
        self._timer = KernelTimer.create()
        self._armed_ns = 0
        self._heap: list[tuple[int, int, _Conn]] = []
        self._order = itertools.count()
        self._conns: set[_Conn] = set()
        self._blob_cache: dict[tuple[int, str, str], bytes] = {}
        self._running = True
        self._random = random.Random(0x5EED)
        self._next_reap_ns = 0
        self.plain = self._listen(None)
        self.tls = self._listen(tls_context)
        self._selector.register(control, selectors.EVENT_READ, self._on_control)
        if self._timer is not None:
            self._selector.register(self._timer, selectors.EVENT_READ, self._on_timer)

    @property
    def pacing(self) -> str:
        return "timerfd" if self._timer is not None else "selector timeout (~1 ms granularity)"

    def _listen(self, tls_context: ssl.SSLContext | None) -> socket.socket:
        listener = socket.create_server(("127.0.0.1", 0), backlog=BACKLOG)
        listener.setblocking(False)
        self._selector.register(
            listener, selectors.EVENT_READ, partial(self._accept, listener, tls_context)
        )
        return listener

    # -- loop -------------------------------------------------------------------------------

    def serve(self) -> None:
        """Until ``stop``, the harness's end (pipe EOF) or ``MAX_LIFETIME_NS``, whichever first."""
        end = time.perf_counter_ns() + MAX_LIFETIME_NS
        while self._running and time.perf_counter_ns() < end:
            for key, mask in self._selector.select(self._select_timeout()):
                key.data(mask)
            self._run_due()
            self._reap()

    def _select_timeout(self) -> float:
        if self._timer is not None or not self._heap:
            return 1.0
        return min(1.0, max(0.0, (self._heap[0][0] - time.perf_counter_ns()) / 1e9))

    def _on_control(self, _mask: int) -> None:
        try:
            message = self._control.recv()
        except (EOFError, OSError):
            self._running = False
            return
        if message == "clock":
            self._control.send(time.perf_counter_ns())
        elif message == "cpu":
            self._control.send(time.process_time())
        elif message == "stop":
            self._running = False

    def _on_timer(self, _mask: int) -> None:
        assert self._timer is not None
        self._timer.clear()
        self._armed_ns = 0

    def _run_due(self) -> None:
        now = time.perf_counter_ns()
        for _ in range(len(self._heap)):
            if self._heap[0][0] > now:
                break
            due, _, conn = heapq.heappop(self._heap)
            if conn.state == "paced":
                self._send_piece(conn, due)
            elif conn.state == "head" and conn.idle_due == due and not conn.inbox:
                conn.idle_due = 0
                self._finish(conn, b"")  # idle keep-alive connection: close it, FIN first
        if self._timer is not None and self._heap and self._heap[0][0] != self._armed_ns:
            self._armed_ns = self._heap[0][0]
            self._timer.arm(self._armed_ns)

    def _reap(self) -> None:
        now = time.perf_counter_ns()
        if now < self._next_reap_ns:
            return
        self._next_reap_ns = now + REAP_EVERY_NS
        for conn in [c for c in self._conns if c.deadline_ns < now]:
            self._close(conn)
        if not self._conns:
            gc.collect()  # collector is off while serving; tidy up while idle

    # -- connections ------------------------------------------------------------------------

    def _accept(self, listener: socket.socket, tls_context: ssl.SSLContext | None, _m: int) -> None:
        for _ in range(ACCEPTS_PER_WAKE):
            try:
                sock, _addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(Transport(sock, tls_context), time.perf_counter_ns() + HEAD_TIMEOUT_NS)
            self._conns.add(conn)
            self._selector.register(sock, selectors.EVENT_READ, partial(self._on_conn, conn))

    def _on_conn(self, conn: _Conn, mask: int) -> None:
        transport = conn.transport
        if mask & selectors.EVENT_READ:
            data = transport.receive()
            if data and conn.state in ("head", "body", "paced", "burst"):
                conn.inbox += data  # a request sent early is answered after the current one
                if conn.state in ("head", "body"):
                    self._on_request_bytes(conn)
            if transport.eof:
                self._close(conn)
                return
        if mask & selectors.EVENT_WRITE:
            transport.flush()
        if conn.state == "burst":
            self._pump_burst(conn)
        if conn.state == "closing" and not transport.pending:
            transport.shutdown()
            self._drain(conn)
        self._update_mask(conn)

    def _update_mask(self, conn: _Conn) -> None:
        if conn.state == "closed":
            return
        # A burst that stopped at its per-wake budget needs a writable event to go on.
        writing = conn.transport.pending or conn.state == "burst"
        mask = selectors.EVENT_READ | (selectors.EVENT_WRITE if writing else 0)
        if mask != conn.mask:
            conn.mask = mask
            self._selector.modify(conn.transport.sock, mask, partial(self._on_conn, conn))

    def _close(self, conn: _Conn) -> None:
        if conn.state == "closed":
            return
        conn.state = "closed"
        self._conns.discard(conn)
        self._selector.unregister(conn.transport.sock)
        conn.transport.close()

    def _await_next(self, conn: _Conn) -> None:
        request = conn.request
        assert request is not None
        conn.state = "head"
        conn.request = None
        conn.deadline_ns = time.perf_counter_ns() + HEAD_TIMEOUT_NS
        if request.idle_ms:
            conn.idle_due = time.perf_counter_ns() + request.idle_ms * 1_000_000
            heapq.heappush(self._heap, (conn.idle_due, next(self._order), conn))
        if conn.inbox:
            self._on_request_bytes(conn)

    def _drain(self, conn: _Conn) -> None:
        """Response done and FIN sent: keep reading until the client closes (no RST races)."""
        conn.state = "draining"
        conn.deadline_ns = time.perf_counter_ns() + DRAIN_TIMEOUT_NS

    def _finish(self, conn: _Conn, tail: bytes) -> None:
        """The response ends with ``tail``: close, or (kept alive) wait for the next request."""
        if conn.keep and conn.state in ("paced", "burst"):
            conn.keep = False
            conn.transport.write(tail)
            self._await_next(conn)
            return
        conn.transport.write(tail)
        conn.transport.close_write()
        if conn.transport.pending:
            conn.state = "closing"
        else:
            self._drain(conn)

    # -- requests and responses -------------------------------------------------------------

    def _on_request_bytes(self, conn: _Conn) -> None:
        """Parse what ``inbox`` holds: a head, then its body (read and dropped)."""
        if conn.state == "head":
            end = conn.inbox.find(b"\r\n\r\n")
            if end < 0:
                if len(conn.inbox) > MAX_HEAD:
                    self._finish(conn, _BAD_REQUEST)
                return
            try:
                conn.request, length, client_close = _parse_head(bytes(conn.inbox[:end]))
            except (ValueError, KeyError, UnicodeDecodeError):
                self._finish(conn, _BAD_REQUEST)
                return
            conn.keep = conn.request.keepalive and not client_close
            conn.body_left = length
            conn.idle_due = 0
            del conn.inbox[: end + 4]
            conn.state = "body"
        taken = min(conn.body_left, len(conn.inbox))
        del conn.inbox[:taken]
        conn.body_left -= taken
        if conn.body_left <= 0:
            self._respond(conn)

    def _respond(self, conn: _Conn) -> None:
        request = conn.request
        assert request is not None
        conn.deadline_ns = 1 << 62  # streaming: no deadline until the response is done
        conn.sent = 0
        head = wire.response_head(request, conn.keep)
        if request.api == "chat":
            conn.template = wire.chat_event_template(request.size)
            conn.stamp_at = wire.CHAT_STAMP_OFFSET
            head += wire.chunk(wire.ROLE_EVENT)
        else:
            conn.template = wire.piece_template(request.size, request.body)
            conn.stamp_at = 0
        if request.pacing == "burst" and request.api == "stream":
            conn.blobs = self._blobs(request)
            conn.state = "burst"
            conn.transport.write(head)
            self._pump_burst(conn)
        else:
            conn.state = "paced"
            self._send_piece(conn, time.perf_counter_ns(), head)

    def _send_piece(self, conn: _Conn, due_ns: int, prefix: bytes = b"") -> None:
        request = conn.request
        assert request is not None
        conn.sent += 1
        last = conn.sent >= request.pieces
        piece = wire.stamp(conn.template, time.perf_counter_ns(), conn.stamp_at)
        if request.api == "chat":
            if last:
                piece += wire.FINISH_EVENTS
            piece = wire.chunk(piece) + (wire.LAST_CHUNK if last else b"")
        elif request.framing == "chunked":
            piece = wire.chunk(piece) + (wire.LAST_CHUNK if last else b"")
        data = prefix + piece if prefix else piece
        if last:
            self._finish(conn, data)
        else:
            conn.transport.write(data)
            step = request.every_us * 1000
            if request.spread and conn.sent == 1:
                due_ns += self._random.randrange(max(step, 1))
            heapq.heappush(self._heap, (due_ns + step, next(self._order), conn))
        self._update_mask(conn)

    def _blobs(self, request: wire.StreamRequest) -> list[bytes]:
        """The burst body as blocks of ~1 MiB, last first (popped from the end)."""
        key = (request.size, request.body, request.framing)
        piece = wire.piece_template(request.size, request.body)
        if request.framing == "chunked":
            piece = wire.chunk(piece)
        per_blob = max(1, BLOB_BYTES // len(piece))
        if key not in self._blob_cache:
            self._blob_cache[key] = piece * per_blob
        full, rest = divmod(request.pieces, per_blob)
        blobs = [self._blob_cache[key]] * full + ([piece * rest] if rest else [])
        blobs.reverse()
        return blobs

    def _pump_burst(self, conn: _Conn) -> None:
        for _ in range(BLOBS_PER_WAKE):
            if conn.transport.pending or conn.transport.eof:
                return
            if not conn.blobs:
                assert conn.request is not None
                self._finish(conn, wire.LAST_CHUNK if conn.request.framing == "chunked" else b"")
                return
            conn.transport.write(conn.blobs.pop())

    def close(self) -> None:
        for conn in list(self._conns):
            self._close(conn)
        self._selector.close()
        self.plain.close()
        self.tls.close()
        if self._timer is not None:
            self._timer.close()


def _parse_head(head: bytes) -> tuple[wire.StreamRequest, int, bool]:
    """The request, its body length, and whether the client asked for ``Connection: close``."""
    lines = head.split(b"\r\n")
    method, target, _version = lines[0].split(b" ", 2)
    length = 0
    close = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection":
            close = b"close" in value.lower()
        elif name == b"transfer-encoding":
            raise ValueError("chunked request bodies are not supported here")
    if not 0 <= length <= MAX_BODY:
        raise ValueError("request body too large")
    request = wire.StreamRequest.from_target(target.decode("ascii"))
    if (method == b"POST") != (request.api == "chat"):
        raise ValueError("GET /stream, POST /v1/chat/completions")
    return request, length, close


def main(control: Connection, certfile: str, keyfile: str, core: int | None) -> None:
    """Process entry point: serve until told to stop or the harness goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the harness's to handle
    system.pin(core)
    system.raise_fd_limit()
    tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls_context.load_cert_chain(certfile, keyfile)
    server = StreamServer(control, tls_context)
    gc.disable()
    try:
        control.send(
            ("ready", server.plain.getsockname()[1], server.tls.getsockname()[1], server.pacing)
        )
        server.serve()
    finally:
        server.close()
