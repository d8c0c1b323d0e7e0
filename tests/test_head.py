"""acytoo_raw._head: the common response head parsed without h11, proven equal to h11.

The property: for any head bytes, whenever ``parse_common_head`` answers, h11
(in the state a sent request leaves it) parses the same bytes to a final
``Response`` with the same status, reason, version and headers, and the same
keep-alive verdict. When it does not answer, h11 decides. Inputs come from a
grammar that mixes valid parts with every kind of near miss (versions, 1xx,
bytes h11 refuses, folded lines, bare LF, framing headers in odd forms).
"""

from __future__ import annotations

import anyio
import h11
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from acytoo_raw import _http11
from acytoo_raw._body import find_head_end
from acytoo_raw._exceptions import RemoteProtocolError
from acytoo_raw._head import ResponseHead, parse_common_head
from acytoo_raw._http11 import state_after_request
from tests.test_readpath import tcp_pair


def _h11_reading(head: bytes, method: bytes) -> tuple[h11.Response, bool] | str:
    """What h11 makes of ``head``: the final response and its keep-alive, or why not."""
    connection = state_after_request(method)
    connection.receive_data(head)
    try:
        event_ = connection.next_event()
    except h11.RemoteProtocolError as exc:
        return f"refused: {exc}"
    if not isinstance(event_, h11.Response):
        return f"not final: {type(event_).__name__}"
    keep_alive = event_.http_version == b"1.1" and connection.our_state is h11.DONE
    return event_, keep_alive


def _assert_same_as_h11(
    head: bytes, method: bytes = b"POST", *, count: bool = False
) -> ResponseHead | None:
    ours = parse_common_head(head, method)
    if count:  # Hypothesis' statistics show both paths are exercised.
        event("asked h11" if ours is None else "parsed directly")
    if ours is None:
        return None
    theirs = _h11_reading(head, method)
    assert not isinstance(theirs, str), (head, theirs)
    response, keep_alive = theirs
    assert ours.status_code == response.status_code
    assert ours.reason == response.reason
    assert ours.http_version == response.http_version
    assert ours.headers == list(response.headers)
    assert ours.keep_alive == keep_alive
    return ours


# --- examples ---------------------------------------------------------------------------

COMMON = [
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nDate: Fri, 04 Dec 2026 16:00:00 GMT\r\n\r\n",
    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 \r\nTransfer-Encoding: Chunked\r\n\r\n",
    b"HTTP/1.1 204\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 2\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-Odd:  \t spaced\tvalue \t\r\nX-Empty:\r\nX-Obs: caf\xe9\r\n\r\n",
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 5\r\n\r\n",
]

LEFT_TO_H11 = [
    b"HTTP/1.1 100 Continue\r\n\r\n",  # interim
    b"HTTP/1.1 200 OK\nContent-Length: 2\n\n",  # bare LF
    b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n",  # obsolete line folding
    b"HTTP/2.0 200 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX: a\x0bb\r\n\r\n",
    b"HTTP/1.1 20 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\rX: 1\r\n\r\n",
]


@pytest.mark.parametrize("head", COMMON)
def test_common_heads_are_parsed_directly_and_equal_h11s(head: bytes) -> None:
    assert _assert_same_as_h11(head) is not None


@pytest.mark.parametrize("head", LEFT_TO_H11)
def test_heads_off_the_common_path_are_left_to_h11(head: bytes) -> None:
    assert parse_common_head(head, b"POST") is None


def test_connection_close_in_any_case_and_list_position_ends_keep_alive() -> None:
    head = parse_common_head(b"HTTP/1.1 200 OK\r\nconnection: Upgrade, CLOSE \r\n\r\n", b"GET")
    assert head is not None
    assert head.keep_alive is False
    head = parse_common_head(b"HTTP/1.1 200 OK\r\nconnection: closed\r\n\r\n", b"GET")
    assert head is not None
    assert head.keep_alive is True


def test_transfer_encoding_value_is_lower_cased_as_h11_does() -> None:
    head = parse_common_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\n\r\n", b"GET")
    assert head is not None
    assert head.headers == [(b"transfer-encoding", b"chunked")]


# --- the property --------------------------------------------------------------------------

_TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-!#$%&'*+.^_`|~"
_names = st.one_of(
    st.sampled_from(
        [
            b"Content-Length",
            b"content-length",
            b"Transfer-Encoding",
            b"Connection",
            b"connection",
            b"Content-Type",
            b"X-A",
            b"Keep-Alive",
        ]
    ),
    st.text(_TOKEN_CHARS, min_size=1, max_size=8).map(str.encode),
    st.binary(min_size=0, max_size=4),  # mostly not a token
)
_value_bytes = st.sampled_from(
    [
        b"a",
        b"1",
        b"12",
        b"0",
        b" ",
        b"\t",
        b"close",
        b"Close",
        b"keep-alive",
        b",",
        b"chunked",
        b"Chunked",
        b"gzip",
        b"\x80",
        b"\xff",
        b"\x00",
        b"\x0b",
        b"\x0c",
        b"\r",
        b"\n",
        b"9" * 21,
        b"0" * 20,
        b"-1",
        b"+1",
        b"1.5",
        b"\xe9",
    ]
)
_good_values = st.sampled_from(
    [
        b"12",
        b"0",
        b"chunked",
        b"Chunked",
        b"close",
        b"keep-alive",
        b"Close, upgrade",
        b"text/plain; charset=utf-8",
        b"a  b",
        b"\xe9t\xe9",
        b"",
        b"timeout=5",
        b"9" * 20,
        b"9" * 21,
        b"00000000000000000000001",
    ]
)
_values = st.one_of(
    st.tuples(
        st.sampled_from([b"", b" ", b"\t "]), _good_values, st.sampled_from([b"", b" \t"])
    ).map(b"".join),
    st.tuples(
        st.sampled_from([b"", b" ", b"\t "]), _good_values, st.sampled_from([b"", b" \t"])
    ).map(b"".join),
    st.lists(_value_bytes, max_size=6).map(b"".join),
)
_header_lines = st.one_of(
    st.tuples(_names, st.sampled_from([b":"] * 6 + [b" :", b""]), _values).map(b"".join),
    st.sampled_from([b" folded", b"\tfolded", b"", b"no colon"]),
)
_status_lines = st.tuples(
    st.sampled_from(
        [b"HTTP/1.1"] * 4 + [b"HTTP/1.0", b"HTTP/2.0", b"HTTP/0.9", b"http/1.1", b"HTTP/1.1 "]
    ),
    st.just(b" "),
    st.one_of(
        st.sampled_from([b"200", b"200", b"404"]),
        st.sampled_from([b"200", b"204", b"304", b"404", b"500", b"999", b"101", b"100", b"103"]),
        st.integers(0, 1200).map(lambda n: str(n).encode()),
    ),
    st.sampled_from([b"", b" ", b" OK", b" Not Found", b" \tx", b" \x80\xff", b" a\x00", b" a\rb"]),
).map(b"".join)
_line_ends = st.sampled_from([b"\r\n"] * 20 + [b"\n", b"\r"])


_clean_header_lines = st.tuples(
    st.one_of(
        st.sampled_from([b"Content-Length", b"Transfer-Encoding", b"connection", b"X-A"]),
        st.text(_TOKEN_CHARS, min_size=1, max_size=8).map(str.encode),
    ),
    st.sampled_from([b":"] * 8 + [b""]),
    st.tuples(
        st.sampled_from([b"", b" ", b"\t "]), _good_values, st.sampled_from([b"", b" \t"])
    ).map(b"".join),
).map(b"".join)


@st.composite
def _heads(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):  # Mostly well-formed: the direct path's own ground.
        lines = [
            b"HTTP/1.%d %d OK" % (draw(st.integers(0, 1)), draw(st.integers(100, 599))),
            *draw(st.lists(_clean_header_lines, max_size=5)),
        ]
    else:
        lines = [draw(_status_lines), *draw(st.lists(_header_lines, max_size=5))]
    data = b"".join(line + draw(_line_ends) for line in lines) + draw(_line_ends)
    return data + b"\r\n" + b"\r\n"  # Some blank line ends it, whatever came before.


# h11 judges a response by the request it answers: HEAD and CONNECT differ.
_methods = st.sampled_from([b"GET", b"POST", b"HEAD", b"CONNECT"])


@settings(max_examples=3000, deadline=None)
@given(_heads(), _methods)
def test_any_head_parsed_directly_is_what_h11_parses(data: bytes, method: bytes) -> None:
    end = find_head_end(data) if data[:1] >= b"!" else None
    if end is None:
        return
    _assert_same_as_h11(data[:end], method, count=True)


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=200), _methods)
def test_any_bytes_never_raise_and_agree_with_h11(data: bytes, method: bytes) -> None:
    head = data + b"\r\n\r\n"
    _assert_same_as_h11(head, method, count=True)


@pytest.mark.parametrize("status", [b"200 Connection established", b"204 No Content"])
def test_an_answer_to_connect_is_left_to_h11(status: bytes) -> None:
    # A 2xx to CONNECT switches protocols in h11 (a tunnel, never kept alive).
    head = b"HTTP/1.1 " + status + b"\r\n\r\n"
    assert parse_common_head(head, b"CONNECT") is None
    assert parse_common_head(head, b"GET") is not None


# --- the reader uses it, and makes h11's state only when needed -----------------------------


async def _read(data: bytes, monkeypatch: pytest.MonkeyPatch) -> tuple[ResponseHead, int]:
    """The head a ResponseReader reads from a real socket carrying ``data``, and how
    many h11 states it made for it."""
    made: list[bytes] = []
    original = _http11.state_after_request

    def counting(method: bytes) -> h11.Connection:
        made.append(method)
        return original(method)

    monkeypatch.setattr(_http11, "state_after_request", counting)
    with tcp_pair() as (stream, peer):
        peer.sendall(data)
        reader = _http11.ResponseReader(stream, None, b"POST")
        with anyio.fail_after(5):
            head = await reader.receive_head()
    return head, len(made)


@pytest.mark.anyio
async def test_reader_reads_a_common_head_without_making_h11_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    head, made = await _read(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", monkeypatch)
    assert (head.status_code, head.keep_alive, made) == (200, True, 0)


@pytest.mark.anyio
async def test_reader_hands_an_interim_head_to_h11_and_reads_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = (
        b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    )
    head, made = await _read(data, monkeypatch)
    assert (head.status_code, made) == (200, 1)


@pytest.mark.anyio
async def test_reader_refuses_a_malformed_head_through_h11(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(RemoteProtocolError, match="malformed response head"):
        await _read(b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", monkeypatch)
