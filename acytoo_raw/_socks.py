"""Sans-IO SOCKS5 client handshake: RFC 1928 CONNECT with RFC 1929 username/password.

No sockets here: :class:`Socks5Handshake` turns the proxy's bytes into the
bytes to send next. The I/O driver (in the connection layer) does::

    handshake = Socks5Handshake(host, port, username=..., password=...)
    await stream.send(handshake.start())
    while not handshake.done:
        data = await stream.receive()          # EndOfStream -> receive_data(b"")
        reply = handshake.receive_data(data)
        if reply:
            await stream.send(reply)
    # handshake.trailing_data belongs to the tunnel (e.g. the start of a TLS record)

Every reply is read exactly by its length, however the proxy's bytes are split
across reads, and is checked byte by byte as soon as each byte arrives, so a
peer that is not a SOCKS5 proxy fails at its first wrong byte instead of
waiting for a timeout. Every failure is a :class:`~acytoo_raw.ProxyError` with
``status_code=None`` and a short ``reason``; its message never contains the
password and does not name the proxy (the caller prefixes ``proxy host:port``).
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from ._exceptions import LocalProtocolError, ProxyError

__all__ = [
    "ATYP_DOMAIN",
    "ATYP_IPV4",
    "ATYP_IPV6",
    "AUTH_VERSION",
    "CMD_CONNECT",
    "MAX_FIELD_BYTES",
    "METHOD_GSSAPI",
    "METHOD_NAMES",
    "METHOD_NO_ACCEPTABLE",
    "METHOD_NO_AUTH",
    "METHOD_USERNAME_PASSWORD",
    "REPLY_REASONS",
    "REP_SUCCEEDED",
    "SOCKS_VERSION",
    "Socks5Handshake",
]

SOCKS_VERSION: Final = 0x05  # RFC 1928 VER, first byte of every message both ways
AUTH_VERSION: Final = 0x01  # RFC 1929 sub-negotiation VER
CMD_CONNECT: Final = 0x01  # the only command a client of an HTTP library needs

# RFC 1928 section 3 authentication METHOD codes.
METHOD_NO_AUTH: Final = 0x00
METHOD_GSSAPI: Final = 0x01  # never offered; named so a proxy choosing it gets a clear message
METHOD_USERNAME_PASSWORD: Final = 0x02  # RFC 1929
METHOD_NO_ACCEPTABLE: Final = 0xFF

METHOD_NAMES: Final[Mapping[int, str]] = MappingProxyType(
    {
        METHOD_NO_AUTH: "no authentication",
        METHOD_GSSAPI: "GSSAPI",
        METHOD_USERNAME_PASSWORD: "username/password",
    }
)

# RFC 1928 section 5 address types.
ATYP_IPV4: Final = 0x01
ATYP_DOMAIN: Final = 0x03
ATYP_IPV6: Final = 0x04

REP_SUCCEEDED: Final = 0x00
# RFC 1928 section 6 REP codes: the reason a failed CONNECT reply carries.
REPLY_REASONS: Final[Mapping[int, str]] = MappingProxyType(
    {
        0x01: "general SOCKS server failure",
        0x02: "connection not allowed by ruleset",
        0x03: "network unreachable",
        0x04: "host unreachable",
        0x05: "connection refused",
        0x06: "TTL expired",
        0x07: "command not supported",
        0x08: "address type not supported",
    }
)

# RFC 1928/1929 length fields are one octet.
MAX_FIELD_BYTES: Final = 255
# VER REP RSV ATYP: the fixed start of a CONNECT reply, before the bound address.
_REPLY_HEAD = 4
# Bound address length by ATYP (a domain adds its length octet), plus 2 port octets.
_ADDRESS_LENGTHS: Final[Mapping[int, int]] = MappingProxyType({ATYP_IPV4: 4, ATYP_IPV6: 16})
_PORT_BYTES = 2


class _State(enum.Enum):
    IDLE = "not started"
    METHOD = "waiting for the method selection"
    AUTH = "waiting for the username/password reply"
    CONNECT = "waiting for the CONNECT reply"
    DONE = "done"
    FAILED = "failed"


# What the proxy had not yet answered when it closed the connection.
_CLOSED_WHILE: Final[Mapping[_State, str]] = MappingProxyType(
    {
        _State.METHOD: "before choosing an authentication method (is it a SOCKS5 proxy?)",
        _State.AUTH: "before answering the username/password authentication",
        _State.CONNECT: "before answering the SOCKS5 CONNECT request",
    }
)


def _error(message: str, reason: str) -> ProxyError:
    return ProxyError(message, status_code=None, reason=reason)


def _credential(value: str, what: str) -> bytes:
    """``value`` as UTF-8, 1..255 bytes; the message never shows the value."""
    if not isinstance(value, str):
        raise LocalProtocolError(f"SOCKS5 {what} must be a str, got {type(value).__name__}")
    try:
        encoded = value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate; the exception text would show the value
        raise LocalProtocolError(f"SOCKS5 {what} cannot be encoded as UTF-8") from None
    if not 1 <= len(encoded) <= MAX_FIELD_BYTES:
        raise LocalProtocolError(
            f"SOCKS5 {what} must be 1 to {MAX_FIELD_BYTES} bytes in UTF-8, got {len(encoded)}"
        )
    return encoded


def _address(host: str) -> bytes:
    """ATYP and DST.ADDR for ``host``: an IP literal, else a domain the proxy resolves."""
    if not isinstance(host, str):
        raise LocalProtocolError(f"SOCKS5 target host must be a str, got {type(host).__name__}")
    if host.startswith("[") and host.endswith("]"):
        try:
            return bytes([ATYP_IPV6]) + ipaddress.IPv6Address(host[1:-1]).packed
        except ValueError:
            raise LocalProtocolError(
                f"SOCKS5 target {host!r} is bracketed but not an IPv6 address"
            ) from None
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        atyp = ATYP_IPV4 if isinstance(ip, ipaddress.IPv4Address) else ATYP_IPV6
        return bytes([atyp]) + ip.packed
    if not host.isascii():
        raise LocalProtocolError(f"SOCKS5 target host {host!r} is not ASCII (IDNA-encode it first)")
    # A C server hands the name to getaddrinfo: a NUL would cut it short there.
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in host):
        raise LocalProtocolError(
            f"SOCKS5 target host {host!r} contains a control character or space"
        )
    name = host.encode("ascii")
    if not 1 <= len(name) <= MAX_FIELD_BYTES:
        raise LocalProtocolError(
            f"SOCKS5 target host must be 1 to {MAX_FIELD_BYTES} bytes, got {len(name)}"
        )
    return bytes([ATYP_DOMAIN, len(name)]) + name


class Socks5Handshake:
    """One SOCKS5 client handshake asking the proxy to CONNECT to ``host:port``.

    ``host`` is an IPv4 or IPv6 literal (sent as ATYP 1 or 4; an IPv6 literal
    may be bracketed) or a domain name the proxy resolves (ATYP 3, the
    ``socks5h://`` case): ASCII, already IDNA-encoded, 1..255 bytes.
    With ``username`` and ``password`` (each 1..255 bytes in UTF-8) the
    greeting offers "no authentication" and RFC 1929 username/password, and
    the proxy picks; without them it offers "no authentication" only.

    Raises:
        LocalProtocolError: a bad host, port or credential (nothing is sent).
    """

    __slots__ = (
        "_auth_request",
        "_buffer",
        "_connect_request",
        "_methods",
        "_state",
        "_trailing",
        "host",
        "port",
        "username",
    )

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 0xFFFF:
            raise LocalProtocolError(f"SOCKS5 target port must be 1 to 65535, got {port!r}")
        address = _address(host)
        if (username is None) != (password is None):
            raise LocalProtocolError("SOCKS5 needs both a username and a password, or neither")
        self.host = host
        self.port = port
        self.username = username
        if username is not None and password is not None:
            user = _credential(username, "username")
            secret = _credential(password, "password")
            # RFC 1929 section 2: VER ULEN UNAME PLEN PASSWD.
            self._auth_request: bytes | None = (
                bytes([AUTH_VERSION, len(user)]) + user + bytes([len(secret)]) + secret
            )
            # Offer no-auth too (as curl does): a proxy that needs no password gets none.
            self._methods = bytes([METHOD_NO_AUTH, METHOD_USERNAME_PASSWORD])
        else:
            self._auth_request = None
            self._methods = bytes([METHOD_NO_AUTH])
        # RFC 1928 section 4: VER CMD RSV ATYP DST.ADDR DST.PORT.
        self._connect_request = (
            bytes([SOCKS_VERSION, CMD_CONNECT, 0x00]) + address + port.to_bytes(2, "big")
        )
        self._state = _State.IDLE
        self._buffer = bytearray()
        self._trailing = b""

    def __repr__(self) -> str:
        # The password is deliberately absent.
        auth = f", username={self.username!r}, password=***" if self.username is not None else ""
        return f"<Socks5Handshake {self.host!r}:{self.port}{auth} state={self._state.value!r}>"

    @property
    def done(self) -> bool:
        """True once the proxy reported the tunnel established."""
        return self._state is _State.DONE

    @property
    def trailing_data(self) -> bytes:
        """Bytes received after the final reply: the tunnel's first bytes (``b""`` before done)."""
        return self._trailing

    def start(self) -> bytes:
        """The greeting to send first: VER NMETHODS METHODS.

        Raises:
            RuntimeError: called twice.
        """
        if self._state is not _State.IDLE:
            raise RuntimeError("Socks5Handshake.start() called twice")
        self._state = _State.METHOD
        return bytes([SOCKS_VERSION, len(self._methods)]) + self._methods

    def receive_data(self, data: bytes) -> bytes:
        """Feed bytes the proxy sent; returns the bytes to send now (``b""`` if none).

        ``data == b""`` means the proxy closed the connection (EOF), as in h11.
        Once :attr:`done`, bytes fed past the final reply are in
        :attr:`trailing_data`.

        Raises:
            ProxyError: the proxy refused, failed or broke the protocol, or
                closed the connection early (``status_code`` None, ``reason``
                short: for a failed CONNECT the RFC 1928 meaning of REP).
                The handshake is then failed for good.
            RuntimeError: programmer misuse: called before :meth:`start`,
                after :attr:`done` (tunnel bytes go to the stream, not here)
                or after a ProxyError.
        """
        if self._state is _State.IDLE:
            raise RuntimeError("Socks5Handshake.receive_data() called before start()")
        if self._state is _State.DONE:
            raise RuntimeError("the SOCKS5 handshake is done: tunnel bytes belong to the stream")
        if self._state is _State.FAILED:
            raise RuntimeError("the SOCKS5 handshake has already failed")
        try:
            if not data:
                raise _error(
                    f"SOCKS5 proxy closed the connection {_CLOSED_WHILE[self._state]}",
                    "connection closed",
                )
            self._buffer += data
            out = b""
            while not self.done:
                step = self._advance()
                if step is None:
                    break
                out += step
        except ProxyError:
            self._state = _State.FAILED
            self._buffer.clear()
            raise
        if self.done:
            self._trailing = bytes(self._buffer)
            self._buffer.clear()
        return out

    # ------------------------------------------------------------------ steps
    # Each step returns the bytes to send when its reply is complete (the state
    # then moves on), or None when it needs more bytes. Bytes are checked as
    # soon as they are present, before the whole reply is.

    def _advance(self) -> bytes | None:
        if self._state is _State.METHOD:
            return self._method_reply()
        if self._state is _State.AUTH:
            return self._auth_reply()
        return self._connect_reply()

    def _check_version(self, expected: tuple[int, ...], what: str) -> None:
        if self._buffer and self._buffer[0] not in expected:
            raise _error(
                f"not a SOCKS5 proxy: {what} starts with 0x{self._buffer[0]:02x}, "
                f"expected 0x{expected[0]:02x}",
                "not a SOCKS5 proxy",
            )

    def _method_reply(self) -> bytes | None:
        # RFC 1928 section 3: VER METHOD.
        self._check_version((SOCKS_VERSION,), "the method selection reply")
        if len(self._buffer) < 2:
            return None
        method = self._buffer[1]
        del self._buffer[:2]
        if method == METHOD_NO_ACCEPTABLE:
            offered = ", ".join(METHOD_NAMES[m] for m in self._methods)
            hint = (
                "it wants other authentication"
                if self._auth_request is not None
                else "it wants credentials (socks5://user:password@host) or other authentication"
            )
            raise _error(
                f"SOCKS5 proxy accepts none of the offered authentication methods "
                f"({offered}): {hint}",
                "no acceptable authentication method",
            )
        if method not in self._methods:
            name = METHOD_NAMES.get(method, "unknown")
            raise _error(
                f"SOCKS5 proxy chose authentication method 0x{method:02x} ({name}), "
                f"which was not offered",
                "authentication method not offered",
            )
        if method == METHOD_USERNAME_PASSWORD and self._auth_request is not None:
            self._state = _State.AUTH
            return self._auth_request
        self._state = _State.CONNECT
        return self._connect_request

    def _auth_reply(self) -> bytes | None:
        # RFC 1929 section 2: VER STATUS. Some servers answer VER 5 instead of 1
        # (curl ignores the byte altogether); both are taken.
        self._check_version((AUTH_VERSION, SOCKS_VERSION), "the username/password reply")
        if len(self._buffer) < 2:
            return None
        status = self._buffer[1]
        del self._buffer[:2]
        if status != 0x00:
            raise _error(
                f"SOCKS5 proxy rejected the username/password (status 0x{status:02x}): "
                f"wrong username or password",
                "wrong username or password",
            )
        self._state = _State.CONNECT
        return self._connect_request

    def _connect_reply(self) -> bytes | None:
        # RFC 1928 section 6: VER REP RSV ATYP BND.ADDR BND.PORT.
        buffer = self._buffer
        self._check_version((SOCKS_VERSION,), "the CONNECT reply")
        if len(buffer) >= 2 and buffer[1] != REP_SUCCEEDED:
            # Decided at the REP byte: a failing proxy may close without the rest.
            rep = buffer[1]
            reason = REPLY_REASONS.get(rep)
            if reason is None:
                raise _error(
                    f"SOCKS5 proxy could not connect to {self._target()}: "
                    f"unassigned reply code 0x{rep:02x}",
                    f"unknown reply code 0x{rep:02x}",
                )
            raise _error(
                f"SOCKS5 proxy could not connect to {self._target()}: {reason} (reply 0x{rep:02x})",
                reason,
            )
        if len(buffer) >= 3 and buffer[2] != 0x00:
            raise _error(
                f"SOCKS5 proxy sent a malformed CONNECT reply: reserved byte 0x{buffer[2]:02x}",
                "malformed reply",
            )
        if len(buffer) < _REPLY_HEAD:
            return None
        atyp = buffer[3]
        if atyp == ATYP_DOMAIN:
            if len(buffer) < _REPLY_HEAD + 1:
                return None
            address_length = 1 + buffer[_REPLY_HEAD]
        elif atyp in _ADDRESS_LENGTHS:
            address_length = _ADDRESS_LENGTHS[atyp]
        else:
            raise _error(
                f"SOCKS5 proxy sent a malformed CONNECT reply: address type 0x{atyp:02x}",
                "malformed reply",
            )
        total = _REPLY_HEAD + address_length + _PORT_BYTES
        if len(buffer) < total:
            return None
        del buffer[:total]
        self._state = _State.DONE
        return b""

    def _target(self) -> str:
        host = self.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{host}:{self.port}"
