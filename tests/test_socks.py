"""The sans-IO SOCKS5 handshake (acytoo_raw._socks): bytes, errors, splits, garbage.

No sockets: the proxy's replies are fed by hand. The real-server side is
tests/test_socks_real.py (microsocks).
"""

from __future__ import annotations

import ipaddress
import itertools
import traceback
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acytoo_raw._exceptions import LocalProtocolError, ProxyError
from acytoo_raw._socks import (
    METHOD_NO_ACCEPTABLE,
    METHOD_NO_AUTH,
    METHOD_USERNAME_PASSWORD,
    REPLY_REASONS,
    Socks5Handshake,
)

# Every case is pure computation; a hang would be a bug (an endless parse loop).
pytestmark = pytest.mark.timeout(60)

PASSWORD = "Pw-sekrit-4711"
SETTINGS = settings(max_examples=200, deadline=None)

SUCCESS_V4 = b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00"  # bound 0.0.0.0:0, as microsocks sends

# RFC 1928 section 6, written out here (not read from the module) so a wrong table fails.
RFC_REASONS = {
    0x01: "general SOCKS server failure",
    0x02: "connection not allowed by ruleset",
    0x03: "network unreachable",
    0x04: "host unreachable",
    0x05: "connection refused",
    0x06: "TTL expired",
    0x07: "command not supported",
    0x08: "address type not supported",
}


def _feed_all(handshake: Socks5Handshake, chunks: list[bytes]) -> tuple[bytes, bytes]:
    """Feed chunks until done, as a driver does.

    Returns everything the handshake asked to send, and the chunks not fed
    (after done they belong to the tunnel stream), joined.
    """
    sent = b""
    for i, chunk in enumerate(chunks):
        sent += handshake.receive_data(chunk)
        if handshake.done:
            return sent, b"".join(chunks[i + 1 :])
    return sent, b""


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given offsets into non-empty chunks (b"" would mean EOF)."""
    points = sorted({c for c in cuts if 0 < c < len(data)})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges) if b > a]


def _error_of(handshake: Socks5Handshake, chunks: list[bytes]) -> ProxyError | None:
    """Feed chunks until done; the ProxyError raised, if any (anything else escapes)."""
    try:
        _feed_all(handshake, chunks)
    except ProxyError as exc:
        return exc
    return None


def _secret_free(exc: BaseException, handshake: Socks5Handshake | None = None) -> None:
    texts = [str(exc), repr(exc), repr(exc.args)]
    if isinstance(exc, ProxyError):
        texts.append(repr(exc.reason))
    if handshake is not None:
        texts.append(repr(handshake))
    for text in texts:
        assert PASSWORD not in text
        assert PASSWORD.encode().hex() not in text


# --------------------------------------------------------------------------- exact bytes


def test_greeting_without_credentials_offers_no_auth_only() -> None:
    assert Socks5Handshake("127.0.0.1", 80).start() == b"\x05\x01\x00"


def test_greeting_with_credentials_offers_no_auth_and_username_password() -> None:
    handshake = Socks5Handshake("127.0.0.1", 80, username="u", password=PASSWORD)
    assert handshake.start() == b"\x05\x02\x00\x02"


@pytest.mark.parametrize(
    ("host", "port", "request_bytes"),
    [
        pytest.param("127.0.0.1", 8080, b"\x05\x01\x00\x01\x7f\x00\x00\x01\x1f\x90", id="ipv4"),
        pytest.param("::1", 443, b"\x05\x01\x00\x04" + b"\x00" * 15 + b"\x01\x01\xbb", id="ipv6"),
        pytest.param(
            "[2001:db8::2]",
            1,
            b"\x05\x01\x00\x04\x20\x01\x0d\xb8" + b"\x00" * 11 + b"\x02" + b"\x00\x01",
            id="ipv6-bracketed",
        ),
        pytest.param("example.com", 443, b"\x05\x01\x00\x03\x0bexample.com\x01\xbb", id="domain"),
        pytest.param("localhost", 65535, b"\x05\x01\x00\x03\x09localhost\xff\xff", id="localhost"),
        pytest.param("a" * 255, 1, b"\x05\x01\x00\x03\xff" + b"a" * 255 + b"\x00\x01", id="255"),
    ],
)
def test_connect_request_bytes_without_credentials(
    host: str, port: int, request_bytes: bytes
) -> None:
    handshake = Socks5Handshake(host, port)
    assert handshake.start() == b"\x05\x01\x00"
    assert handshake.receive_data(b"\x05\x00") == request_bytes
    assert not handshake.done
    assert handshake.receive_data(SUCCESS_V4) == b""
    assert handshake.done
    assert handshake.trailing_data == b""


def test_username_password_then_connect_bytes() -> None:
    handshake = Socks5Handshake("10.1.2.3", 443, username="user", password="s3cret")
    assert handshake.start() == b"\x05\x02\x00\x02"
    assert handshake.receive_data(b"\x05\x02") == b"\x01\x04user\x06s3cret"
    assert not handshake.done
    assert handshake.receive_data(b"\x01\x00") == b"\x05\x01\x00\x01\x0a\x01\x02\x03\x01\xbb"
    assert not handshake.done
    assert handshake.receive_data(SUCCESS_V4 + b"tunnel") == b""
    assert handshake.done
    assert handshake.trailing_data == b"tunnel"


def test_credentials_are_utf8_with_byte_lengths() -> None:
    handshake = Socks5Handshake("example.com", 80, username="üser", password="pässwörd")
    handshake.start()
    user, secret = "üser".encode(), "pässwörd".encode()
    assert handshake.receive_data(b"\x05\x02") == (
        b"\x01" + bytes([len(user)]) + user + bytes([len(secret)]) + secret
    )


def test_proxy_choosing_no_auth_skips_the_credentials() -> None:
    handshake = Socks5Handshake("example.com", 80, username="user", password=PASSWORD)
    handshake.start()
    sent = handshake.receive_data(b"\x05\x00")
    assert sent == b"\x05\x01\x00\x03\x0bexample.com\x00\x50"
    assert PASSWORD.encode() not in sent


def test_all_replies_in_one_read() -> None:
    handshake = Socks5Handshake("example.com", 80, username="user", password="pw")
    handshake.start()
    sent = handshake.receive_data(b"\x05\x02" + b"\x01\x00" + SUCCESS_V4 + b"HTTP/1.1")
    assert sent == b"\x01\x04user\x02pw" + b"\x05\x01\x00\x03\x0bexample.com\x00\x50"
    assert handshake.done
    assert handshake.trailing_data == b"HTTP/1.1"


def test_auth_reply_with_socks_version_byte_is_accepted() -> None:
    # Some servers answer the RFC 1929 reply with VER 5; curl ignores the byte.
    handshake = Socks5Handshake("127.0.0.1", 80, username="u", password="p")
    handshake.start()
    handshake.receive_data(b"\x05\x02")
    assert handshake.receive_data(b"\x05\x00").startswith(b"\x05\x01\x00\x01")


@pytest.mark.parametrize(
    "bound",
    [
        pytest.param(b"\x01" + bytes(4), id="ipv4"),
        pytest.param(b"\x04" + bytes(16), id="ipv6"),
        pytest.param(b"\x03\x0bexample.com", id="domain"),
        pytest.param(b"\x03\x00", id="empty-domain"),
    ],
)
def test_connect_reply_read_by_its_address_type(bound: bytes) -> None:
    handshake = Socks5Handshake("127.0.0.1", 80)
    handshake.start()
    handshake.receive_data(b"\x05\x00")
    reply = b"\x05\x00\x00" + bound + b"\x12\x34"
    # One byte short is not done; the last port byte completes it exactly.
    assert handshake.receive_data(reply[:-1]) == b""
    assert not handshake.done
    handshake.receive_data(reply[-1:] + b"\x16\x03\x01")
    assert handshake.done
    assert handshake.trailing_data == b"\x16\x03\x01"


def test_method_constants() -> None:
    assert (METHOD_NO_AUTH, METHOD_USERNAME_PASSWORD, METHOD_NO_ACCEPTABLE) == (0x00, 0x02, 0xFF)


def test_repr_hides_the_password() -> None:
    handshake = Socks5Handshake("example.com", 80, username="user", password=PASSWORD)
    assert PASSWORD not in repr(handshake)
    assert "user" in repr(handshake)
    assert "example.com" in repr(handshake)
    handshake.start()
    handshake.receive_data(b"\x05\x02")
    assert PASSWORD not in repr(handshake)


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize("rep", sorted(RFC_REASONS))
def test_every_reply_code_is_a_proxy_error_with_the_rfc_reason(rep: int) -> None:
    assert REPLY_REASONS[rep] == RFC_REASONS[rep]
    handshake = Socks5Handshake("example.com", 443, username="user", password=PASSWORD)
    handshake.start()
    handshake.receive_data(b"\x05\x02")
    handshake.receive_data(b"\x01\x00")
    with pytest.raises(ProxyError) as info:
        handshake.receive_data(bytes([5, rep, 0, 1, 0, 0, 0, 0, 0, 0]))
    assert info.value.status_code is None
    assert info.value.reason == RFC_REASONS[rep]
    assert RFC_REASONS[rep] in str(info.value)
    assert "example.com:443" in str(info.value)
    assert f"0x{rep:02x}" in str(info.value)
    assert not handshake.done
    _secret_free(info.value, handshake)


@pytest.mark.parametrize("rep", sorted(RFC_REASONS))
def test_reply_code_is_decided_without_the_rest_of_the_reply(rep: int) -> None:
    # microsocks and others may close right after a failure: VER REP is enough.
    handshake = Socks5Handshake("127.0.0.1", 9)
    handshake.start()
    handshake.receive_data(b"\x05\x00")
    assert handshake.receive_data(b"\x05") == b""
    with pytest.raises(ProxyError) as info:
        handshake.receive_data(bytes([rep]))
    assert info.value.reason == RFC_REASONS[rep]


@pytest.mark.parametrize("rep", [0x09, 0x7F, 0xFF])
def test_unassigned_reply_code(rep: int) -> None:
    handshake = Socks5Handshake("127.0.0.1", 9)
    handshake.start()
    handshake.receive_data(b"\x05\x00")
    with pytest.raises(ProxyError) as info:
        handshake.receive_data(bytes([5, rep]))
    assert info.value.status_code is None
    assert info.value.reason == f"unknown reply code 0x{rep:02x}"
    assert f"0x{rep:02x}" in str(info.value)


def test_no_acceptable_method_without_credentials_says_credentials() -> None:
    handshake = Socks5Handshake("127.0.0.1", 80)
    handshake.start()
    with pytest.raises(ProxyError) as info:
        handshake.receive_data(b"\x05\xff")
    assert info.value.status_code is None
    assert info.value.reason == "no acceptable authentication method"
    assert "credentials" in str(info.value)


def test_no_acceptable_method_with_credentials() -> None:
    handshake = Socks5Handshake("127.0.0.1", 80, username="user", password=PASSWORD)
    handshake.start()
    with pytest.raises(ProxyError) as info:
        handshake.receive_data(b"\x05\xff")
    assert info.value.reason == "no acceptable authentication method"
    assert "username/password" in str(info.value)
    _secret_free(info.value, handshake)


@pytest.mark.parametrize(
    ("credentials", "method"),
    [
        pytest.param(False, 0x02, id="userpass-not-offered"),
        pytest.param(False, 0x01, id="gssapi"),
        pytest.param(True, 0x01, id="gssapi-with-credentials"),
        pytest.param(True, 0x80, id="private-method"),
    ],
)
def test_method_not_offered(credentials: bool, method: int) -> None:
    kwargs = {"username": "user", "password": PASSWORD} if credentials else {}
    handshake = Socks5Handshake("127.0.0.1", 80, **kwargs)
    handshake.start()
    with pytest.raises(ProxyError) as info:
        handshake.receive_data(bytes([5, method]))
    assert info.value.status_code is None
    assert info.value.reason == "authentication method not offered"
    assert f"0x{method:02x}" in str(info.value)


@pytest.mark.parametrize("status", [0x01, 0x02, 0xFF])
def test_wrong_username_or_password(status: int) -> None:
    handshake = Socks5Handshake("127.0.0.1", 80, username="user", password=PASSWORD)
    handshake.start()
    handshake.receive_data(b"\x05\x02")
    with pytest.raises(ProxyError) as info:
        handshake.receive_data(bytes([1, status]))
    assert info.value.status_code is None
    assert info.value.reason == "wrong username or password"
    assert "wrong username or password" in str(info.value)
    _secret_free(info.value, handshake)


@pytest.mark.parametrize(
    ("replies", "reason"),
    [
        pytest.param([b"\x04\x00"], "not a SOCKS5 proxy", id="socks4-method-reply"),
        pytest.param([b"HTTP/1.1 400 Bad Request\r\n"], "not a SOCKS5 proxy", id="http-proxy"),
        pytest.param([b"\x05\x02", b"\x00\x00"], "not a SOCKS5 proxy", id="auth-version-0"),
        pytest.param([b"\x05\x02", b"\x02\x00"], "not a SOCKS5 proxy", id="auth-version-2"),
        pytest.param([b"\x05\x02", b"\x01\x00", b"\x04\x00"], "not a SOCKS5 proxy", id="reply-v4"),
        pytest.param([b"\x05\x02", b"\x01\x00", b"\x05\x00\x01"], "malformed reply", id="rsv"),
        pytest.param([b"\x05\x02", b"\x01\x00", b"\x05\x00\x00\x02"], "malformed reply", id="at2"),
        pytest.param([b"\x05\x02", b"\x01\x00", b"\x05\x00\x00\x05"], "malformed reply", id="at5"),
    ],
)
def test_protocol_violations(replies: list[bytes], reason: str) -> None:
    handshake = Socks5Handshake("127.0.0.1", 80, username="user", password=PASSWORD)
    handshake.start()
    with pytest.raises(ProxyError) as info:
        _feed_all(handshake, replies)
    assert info.value.status_code is None
    assert info.value.reason == reason
    _secret_free(info.value, handshake)


def test_wrong_version_is_noticed_at_its_first_byte() -> None:
    handshake = Socks5Handshake("127.0.0.1", 80)
    handshake.start()
    with pytest.raises(ProxyError, match="0x48"):
        handshake.receive_data(b"H")


@pytest.mark.parametrize(
    "replies",
    [
        pytest.param([], id="before-method"),
        pytest.param([b"\x05"], id="mid-method"),
        pytest.param([b"\x05\x02"], id="before-auth-reply"),
        pytest.param([b"\x05\x02", b"\x01\x00"], id="before-connect-reply"),
        pytest.param([b"\x05\x02", b"\x01\x00", SUCCESS_V4[:-1]], id="mid-connect-reply"),
    ],
)
def test_eof_during_the_handshake(replies: list[bytes]) -> None:
    handshake = Socks5Handshake("127.0.0.1", 80, username="user", password=PASSWORD)
    handshake.start()
    for reply in replies:
        handshake.receive_data(reply)
    with pytest.raises(ProxyError) as info:
        handshake.receive_data(b"")
    assert info.value.status_code is None
    assert info.value.reason == "connection closed"
    assert "closed" in str(info.value)


# --------------------------------------------------------------------------- misuse


def test_receive_before_start_is_a_runtime_error() -> None:
    with pytest.raises(RuntimeError):
        Socks5Handshake("127.0.0.1", 80).receive_data(b"\x05\x00")


def test_start_twice_is_a_runtime_error() -> None:
    handshake = Socks5Handshake("127.0.0.1", 80)
    handshake.start()
    with pytest.raises(RuntimeError):
        handshake.start()


def test_feeding_after_done_is_a_runtime_error() -> None:
    handshake = Socks5Handshake("127.0.0.1", 80)
    handshake.start()
    handshake.receive_data(b"\x05\x00" + SUCCESS_V4 + b"x")
    assert handshake.done
    with pytest.raises(RuntimeError):
        handshake.receive_data(b"more")
    assert handshake.trailing_data == b"x"


def test_feeding_after_failure_is_a_runtime_error() -> None:
    handshake = Socks5Handshake("127.0.0.1", 80)
    handshake.start()
    with pytest.raises(ProxyError):
        handshake.receive_data(b"\x05\xff")
    with pytest.raises(RuntimeError):
        handshake.receive_data(b"\x05\x00")
    assert not handshake.done


def test_trailing_data_is_empty_before_done() -> None:
    handshake = Socks5Handshake("127.0.0.1", 80)
    handshake.start()
    handshake.receive_data(b"\x05\x00\x05\x00\x00\x01")
    assert handshake.trailing_data == b""


# --------------------------------------------------------------------------- construction


@pytest.mark.parametrize(
    "host",
    [
        pytest.param("", id="empty"),
        pytest.param("a" * 256, id="256-bytes"),
        pytest.param("bücher.example", id="non-ascii"),
        pytest.param("evil.com\x00.good.com", id="nul"),
        pytest.param("a b", id="space"),
        pytest.param("a\r\nb", id="crlf"),
        pytest.param("[not-ipv6]", id="bracketed-name"),
        pytest.param("[127.0.0.1]", id="bracketed-ipv4"),
    ],
)
def test_bad_host_refused_at_construction(host: str) -> None:
    with pytest.raises(LocalProtocolError):
        Socks5Handshake(host, 80)


@pytest.mark.parametrize("port", [0, -1, 65536, True, 80.0, "80"])
def test_bad_port_refused_at_construction(port: object) -> None:
    with pytest.raises(LocalProtocolError):
        Socks5Handshake("127.0.0.1", port)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("username", "password"),
    [
        pytest.param("u" * 256, "p", id="username-256"),
        pytest.param("", "p", id="username-empty"),
        pytest.param("u", "", id="password-empty"),
        pytest.param("u", None, id="password-missing"),
        pytest.param(None, "p", id="username-missing"),
        pytest.param("é" * 128, "p", id="username-256-utf8-bytes"),
    ],
)
def test_bad_credentials_refused_at_construction(
    username: str | None, password: str | None
) -> None:
    with pytest.raises(LocalProtocolError):
        Socks5Handshake("127.0.0.1", 80, username=username, password=password)


@pytest.mark.parametrize(
    "password",
    [
        pytest.param(PASSWORD * 20, id="too-long"),
        pytest.param(PASSWORD + "é" * 121, id="too-long-in-utf8"),
        pytest.param(PASSWORD + "\ud800", id="lone-surrogate"),
    ],
)
def test_bad_password_refused_without_showing_it(password: str) -> None:
    with pytest.raises(LocalProtocolError) as info:
        Socks5Handshake("127.0.0.1", 80, username="user", password=password)
    assert isinstance(info.value, ValueError)
    _secret_free(info.value)
    # Nor in a chained exception (UnicodeEncodeError.object holds the whole string).
    shown = "".join(traceback.format_exception(type(info.value), info.value, None))
    assert PASSWORD not in shown
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__


def test_255_byte_credentials_are_accepted() -> None:
    handshake = Socks5Handshake("127.0.0.1", 80, username="u" * 255, password="é" * 127 + "p")
    handshake.start()
    sent = handshake.receive_data(b"\x05\x02")
    assert sent[:2] == b"\x01\xff"
    assert sent[2 + 255] == 255


# --------------------------------------------------------------------------- hypothesis


@dataclass(frozen=True)
class Scenario:
    """One valid handshake: the constructor's arguments, the proxy's bytes, what we send."""

    host: str
    port: int
    credentials: tuple[str, str] | None
    replies: bytes  # everything the proxy sends, trailing bytes included
    expected_sent: bytes  # everything the client sends after the greeting
    trailing: bytes


_HOSTS = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
    st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="[]"),
        min_size=1,
        max_size=255,
    ),
)
_SECRETS = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=60)
_BOUND = st.one_of(
    st.binary(min_size=4, max_size=4).map(lambda a: b"\x01" + a),
    st.binary(min_size=16, max_size=16).map(lambda a: b"\x04" + a),
    st.binary(max_size=255).map(lambda a: b"\x03" + bytes([len(a)]) + a),
)


def _address(host: str) -> bytes:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return b"\x03" + bytes([len(host)]) + host.encode()
    return (b"\x01" if ip.version == 4 else b"\x04") + ip.packed


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    host = draw(_HOSTS)
    port = draw(st.integers(1, 65535))
    credentials = draw(st.none() | st.tuples(_SECRETS, _SECRETS))
    connect = b"\x05\x01\x00" + _address(host) + port.to_bytes(2, "big")
    replies, sent = b"", b""
    if credentials is not None and draw(st.booleans()):
        user, secret = (c.encode() for c in credentials)
        replies += b"\x05\x02" + draw(st.sampled_from([b"\x01", b"\x05"])) + b"\x00"
        sent += b"\x01" + bytes([len(user)]) + user + bytes([len(secret)]) + secret
    else:
        replies += b"\x05\x00"
    sent += connect
    port_bytes = draw(st.binary(min_size=2, max_size=2))
    replies += b"\x05\x00\x00" + draw(_BOUND) + port_bytes
    trailing = draw(st.binary(max_size=64))
    return Scenario(host, port, credentials, replies + trailing, sent, trailing)


def _handshake(scenario: Scenario) -> Socks5Handshake:
    if scenario.credentials is None:
        return Socks5Handshake(scenario.host, scenario.port)
    user, secret = scenario.credentials
    return Socks5Handshake(scenario.host, scenario.port, username=user, password=secret)


@SETTINGS
@given(scenarios(), st.lists(st.integers(0, 400), max_size=40))
def test_any_split_of_a_valid_reply_sequence(scenario: Scenario, cuts: list[int]) -> None:
    handshake = _handshake(scenario)
    handshake.start()
    sent, unfed = _feed_all(handshake, _split(scenario.replies, cuts))
    assert handshake.done
    assert sent == scenario.expected_sent
    # What the tunnel gets: the trailing bytes of the last read, then later reads.
    assert handshake.trailing_data + unfed == scenario.trailing


@SETTINGS
@given(scenarios())
def test_one_byte_at_a_time_equals_one_read(scenario: Scenario) -> None:
    one = _handshake(scenario)
    one.start()
    sent_once = one.receive_data(scenario.replies)
    handshake_reply_length = len(scenario.replies) - len(scenario.trailing)
    trickle = _handshake(scenario)
    trickle.start()
    sent_trickled = b""
    for i in range(handshake_reply_length):
        assert not trickle.done
        sent_trickled += trickle.receive_data(scenario.replies[i : i + 1])
    assert one.done
    assert trickle.done
    assert sent_once == sent_trickled == scenario.expected_sent
    assert one.trailing_data == scenario.trailing
    assert trickle.trailing_data == b""


@st.composite
def failing_sequences(draw: st.DrawFn) -> tuple[bytes, str]:
    """A proxy reply sequence that must fail, and the reason it must fail with."""
    stage = draw(st.sampled_from(["method", "auth", "connect"]))
    if stage == "method":
        method = draw(st.integers(0, 255).filter(lambda m: m not in (0x00, 0x02)))
        reason = (
            "no acceptable authentication method"
            if method == 0xFF
            else "authentication method not offered"
        )
        return b"\x05" + bytes([method]), reason
    prefix = b"\x05\x02"
    if stage == "auth":
        return prefix + b"\x01" + bytes([draw(st.integers(1, 255))]), "wrong username or password"
    rep = draw(st.integers(1, 255))
    reason = REPLY_REASONS.get(rep, f"unknown reply code 0x{rep:02x}")
    return prefix + b"\x01\x00\x05" + bytes([rep]) + draw(st.binary(max_size=30)), reason


@SETTINGS
@given(failing_sequences(), st.lists(st.integers(0, 64), max_size=20))
def test_any_split_of_a_failing_reply_gives_the_same_error(
    failing: tuple[bytes, str], cuts: list[int]
) -> None:
    data, reason = failing
    handshake = Socks5Handshake("example.com", 443, username="user", password=PASSWORD)
    handshake.start()
    with pytest.raises(ProxyError) as info:
        _feed_all(handshake, _split(data, cuts))
    assert info.value.reason == reason
    assert info.value.status_code is None
    assert not handshake.done
    _secret_free(info.value, handshake)


@SETTINGS
@given(
    st.booleans(),
    st.integers(0, 20),
    st.lists(st.binary(min_size=1, max_size=40), max_size=12),
    st.booleans(),
)
def test_garbage_ends_in_proxy_error_or_needs_more(
    credentials: bool, valid_prefix: int, chunks: list[bytes], eof: bool
) -> None:
    """Garbage (after a valid prefix of some length) never escapes as another exception."""
    kwargs = {"username": "user", "password": PASSWORD} if credentials else {}
    handshake = Socks5Handshake("example.com", 443, **kwargs)
    handshake.start()
    valid = (b"\x05\x02\x01\x00" if credentials else b"\x05\x00") + SUCCESS_V4[:-1]
    feed = [valid[:valid_prefix], *chunks] if valid_prefix else list(chunks)
    if eof:
        feed.append(b"")
    error = _error_of(handshake, feed)
    if error is None:
        # No error: either it needs more bytes (never after EOF) or it completed.
        assert handshake.done or not eof
    else:
        assert error.status_code is None
        assert isinstance(error.reason, str)
        assert error.reason
        assert not handshake.done
        _secret_free(error, handshake)
