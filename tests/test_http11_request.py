"""Sans-IO request building: encode_body and build_request, checked against an h11 server."""

from __future__ import annotations

import json

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acytoo_raw import _http11 as http11
from acytoo_raw._exceptions import LocalProtocolError
from acytoo_raw._http11 import HeaderInput, build_request, encode_body
from acytoo_raw._urls import parse_url

EXAMPLE = parse_url("http://example.com/api")


def server_parse(data: bytes) -> tuple[h11.Request, bytes]:
    """Parse ``data`` as exactly one complete request with an h11 server connection."""
    server = h11.Connection(h11.SERVER)
    server.receive_data(data)
    request = server.next_event()
    assert isinstance(request, h11.Request)
    body = b""
    while True:
        event = server.next_event()
        if isinstance(event, h11.EndOfMessage):
            break
        assert isinstance(event, h11.Data), event
        body += event.data
    assert server.next_event() is h11.NEED_DATA  # nothing left over after the request
    assert server.trailing_data == (b"", False)
    return request, body


def header_values(request: h11.Request, name: bytes) -> list[bytes]:
    return [value for key, value in request.headers if key == name]


def build(
    method: str = "POST",
    url: str = "http://example.com/api",
    headers: HeaderInput = None,
    body: bytes = b"",
    content_type: bytes | None = None,
) -> bytes:
    return build_request(method, parse_url(url), headers, body, content_type)[1]


# --- build_request: exact bytes ------------------------------------------------------


def test_simple_post_is_one_buffer_with_request_line_host_length_and_body() -> None:
    connection, data = build_request("POST", EXAMPLE, None, b'{"a":1}', None)
    assert type(data) is bytes
    assert data == (b'POST /api HTTP/1.1\r\nhost: example.com\r\ncontent-length: 7\r\n\r\n{"a":1}')
    assert connection.our_state is h11.DONE  # head and body both already in `data`


def test_json_post_has_content_type_and_body_in_the_same_buffer() -> None:
    body, content_type = encode_body({"model": "gpt-3.5-turbo"}, None)
    data = build(
        "POST", "http://example.com/api/completions", {"accept": "*/*"}, body, content_type
    )
    assert data == (
        b"POST /api/completions HTTP/1.1\r\n"
        b"host: example.com\r\n"
        b"accept: */*\r\n"
        b"content-type: application/json\r\n"
        b"content-length: 25\r\n"
        b"\r\n"
        b'{"model":"gpt-3.5-turbo"}'
    )
    request, received = server_parse(data)
    assert request.method == b"POST"
    assert request.target == b"/api/completions"
    assert json.loads(received) == {"model": "gpt-3.5-turbo"}


def test_built_request_parses_back_with_h11_server() -> None:
    data = build("POST", "http://example.com:8080/x?y=1", {"X-Trace": "abc"}, b"hello")
    request, body = server_parse(data)
    assert request.http_version == b"1.1"
    assert request.method == b"POST"
    assert request.target == b"/x?y=1"
    assert header_values(request, b"host") == [b"example.com:8080"]
    assert header_values(request, b"x-trace") == [b"abc"]
    assert header_values(request, b"content-length") == [b"5"]
    assert body == b"hello"


def test_target_keeps_query_and_drops_fragment_on_the_wire() -> None:
    data = build("GET", "http://example.com/p?q=1#secret")
    assert data.startswith(b"GET /p?q=1 HTTP/1.1\r\n")
    assert b"secret" not in data


# --- Host ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://example.com/", b"example.com"),
        ("http://example.com:80/", b"example.com"),
        ("https://example.com/", b"example.com"),
        ("http://example.com:8080/", b"example.com:8080"),
        ("https://example.com:8443/", b"example.com:8443"),
        ("http://example.com:443/", b"example.com:443"),
        ("http://[::1]/", b"[::1]"),
        ("http://[::1]:8080/", b"[::1]:8080"),
        ("https://[2001:db8::1]/", b"[2001:db8::1]"),
        ("http://b\u00fccher.de/", b"xn--bcher-kva.de"),
    ],
)
def test_host_header_has_non_default_port_and_brackets_ipv6(url: str, host: bytes) -> None:
    data = build("GET", url)
    assert data.startswith(b"GET / HTTP/1.1\r\nhost: " + host + b"\r\n")
    request, _ = server_parse(data)
    assert header_values(request, b"host") == [host]


@pytest.mark.parametrize("name", ["Host", "host", "HOST"])
def test_callers_host_header_is_respected_and_not_duplicated(name: str) -> None:
    data = build("GET", "http://127.0.0.1:8000/", {name: "chat.acytoo.com"})
    assert data.lower().count(b"host:") == 1
    assert b"127.0.0.1" not in data
    request, _ = server_parse(data)
    assert header_values(request, b"host") == [b"chat.acytoo.com"]


# --- Content-Length / Content-Type ---------------------------------------------------


def test_callers_content_length_is_respected_and_not_duplicated() -> None:
    data = build("POST", headers={"Content-Length": "2"}, body=b"hi")
    assert data.lower().count(b"content-length:") == 1
    assert b"Content-Length: 2\r\n" in data
    request, body = server_parse(data)
    assert header_values(request, b"content-length") == [b"2"]
    assert body == b"hi"


@pytest.mark.parametrize(("declared", "body"), [("5", b"hi"), ("1", b"hi"), ("0", b"x")])
def test_body_not_matching_callers_content_length_is_refused(declared: str, body: bytes) -> None:
    with pytest.raises(LocalProtocolError, match="invalid request"):
        build("POST", headers={"content-length": declared}, body=body)


def test_callers_transfer_encoding_chunked_frames_the_body_without_content_length() -> None:
    data = build("POST", headers={"Transfer-Encoding": "chunked"}, body=b"hello")
    assert b"content-length" not in data.lower()
    request, body = server_parse(data)
    assert header_values(request, b"transfer-encoding") == [b"chunked"]
    assert body == b"hello"


def test_content_type_is_added_when_the_caller_set_none() -> None:
    data = build("POST", body=b"{}", content_type=b"application/json")
    request, _ = server_parse(data)
    assert header_values(request, b"content-type") == [b"application/json"]


@pytest.mark.parametrize("name", ["Content-Type", "content-type", "CONTENT-TYPE"])
def test_callers_content_type_wins_over_the_implied_one(name: str) -> None:
    data = build(
        "POST", headers={name: "text/x-custom"}, body=b"{}", content_type=b"application/json"
    )
    assert b"application/json" not in data
    request, _ = server_parse(data)
    assert header_values(request, b"content-type") == [b"text/x-custom"]


def test_no_content_type_is_invented_without_one() -> None:
    assert b"content-type" not in build("POST", body=b"raw").lower()


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE", "OPTIONS", "get"])
def test_bodyless_method_without_body_has_no_content_length(method: str) -> None:
    data = build(method, "http://example.com/")
    assert data == f"{method} / HTTP/1.1\r\nhost: example.com\r\n\r\n".encode()
    assert b"content-length" not in data.lower()


def test_get_without_body_parses_back_as_empty_body() -> None:
    request, body = server_parse(build("GET"))
    assert header_values(request, b"content-length") == []
    assert body == b""


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_method_with_body_semantics_sends_content_length_zero_when_empty(method: str) -> None:
    data = build(method)
    assert data.endswith(b"content-length: 0\r\n\r\n")
    request, body = server_parse(data)
    assert header_values(request, b"content-length") == [b"0"]
    assert body == b""


def test_get_with_a_body_gets_content_length() -> None:
    request, body = server_parse(build("GET", body=b"abc"))
    assert header_values(request, b"content-length") == [b"3"]
    assert body == b"abc"


# --- header input forms --------------------------------------------------------------


def test_headers_as_sequence_of_pairs_keep_order_and_repeats() -> None:
    data = build("GET", headers=[("X-A", "1"), ("x-b", "2"), ("X-A", "3")])
    assert b"X-A: 1\r\nx-b: 2\r\nX-A: 3\r\n" in data
    request, _ = server_parse(data)
    assert header_values(request, b"x-a") == [b"1", b"3"]


def test_bytes_header_names_and_values_are_accepted() -> None:
    request, _ = server_parse(build("GET", headers=[(b"x-raw", b"v\xe9")]))  # type: ignore[list-item]
    assert header_values(request, b"x-raw") == [b"v\xe9"]


def test_non_ascii_str_header_value_is_sent_as_utf8() -> None:
    request, _ = server_parse(build("GET", headers={"x-name": "j\u00f6rg"}))
    assert header_values(request, b"x-name") == ["j\u00f6rg".encode()]


# --- refusals ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["a\r\nX-Injected: 1", "a\rb", "a\nb", "abc\r\n", "\r\n", "\n", "a\x00b", "\x00", "a\x0bb"],
)
def test_cr_lf_or_nul_in_header_value_is_refused(value: str) -> None:
    with pytest.raises(LocalProtocolError):
        build("GET", headers={"x-test": value})


@pytest.mark.parametrize(
    "name", ["bad name", "a:b", "", "x\r\ny", "x\n", "(x)", "x\x00", "x\u00e9", "a/b"]
)
def test_bad_header_name_is_refused(name: str) -> None:
    with pytest.raises(LocalProtocolError):
        build("GET", headers={name: "v"})


@pytest.mark.parametrize("headers", [[("x-a", 1)], [("x-a",)], [("a", "b", "c")], [None]])
def test_malformed_header_items_are_refused(headers: HeaderInput) -> None:
    with pytest.raises(LocalProtocolError, match="invalid header"):
        build("GET", headers=headers)


def test_local_protocol_error_from_h11_keeps_the_cause() -> None:
    with pytest.raises(LocalProtocolError) as info:
        build("GET", headers={"x": "a\nb"})
    assert isinstance(info.value.__cause__, h11.LocalProtocolError)


@pytest.mark.parametrize("method", ["P\u00d6ST", "GE T", "GET\r\n"])
def test_bad_method_is_refused(method: str) -> None:
    with pytest.raises(LocalProtocolError):
        build(method)


def test_non_ascii_target_is_sent_percent_encoded() -> None:
    data = build("GET", "http://example.com/caf\u00e9?q=\u00fc%20x")
    assert data.startswith(b"GET /caf%C3%A9?q=%C3%BC%20x HTTP/1.1\r\n")


@given(
    before=st.text(max_size=20),
    newline=st.sampled_from(["\r", "\n", "\r\n", "\n\r"]),
    after=st.text(max_size=20),
)
def test_any_header_value_containing_cr_or_lf_is_refused(
    before: str, newline: str, after: str
) -> None:
    with pytest.raises(LocalProtocolError):
        build("GET", headers={"x-test": before + newline + after})


@given(value=st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1))
def test_any_visible_ascii_header_value_reaches_the_server_unchanged(value: str) -> None:
    request, _ = server_parse(build("GET", headers={"x-test": value}))
    assert header_values(request, b"x-test") == [value.encode()]


@given(body=st.binary(max_size=2000))
def test_any_body_reaches_the_server_unchanged_with_its_length(body: bytes) -> None:
    request, received = server_parse(build("POST", body=body))
    assert header_values(request, b"content-length") == [str(len(body)).encode()]
    assert received == body


# --- encode_body ---------------------------------------------------------------------


def test_encode_body_json_is_compact_utf8_with_content_type() -> None:
    body, content_type = encode_body({"a": [1, 2], "b": {"c": None}}, None)
    assert body == b'{"a":[1,2],"b":{"c":null}}'
    assert content_type == b"application/json"


def test_encode_body_json_keeps_non_ascii_as_utf8_not_escapes() -> None:
    body, _ = encode_body({"text": "h\u00e9llo \u4e16\u754c \U0001f600"}, None)
    assert body == '{"text":"h\u00e9llo \u4e16\u754c \U0001f600"}'.encode()
    assert b"\\u" not in body


def test_encode_body_acytoo_payload_round_trips() -> None:
    payload = {
        "key": "",
        "model": "gpt-3.5-turbo",
        "messages": [{"role": "user", "content": "Hello"}],
        "temperature": 0.5,
        "password": "",
    }
    body, _ = encode_body(payload, None)
    assert json.loads(body.decode("utf-8")) == payload
    assert b" " not in body


@pytest.mark.parametrize("value", [0, False, "", [], {}])
def test_encode_body_falsy_json_values_are_still_encoded(value: object) -> None:
    body, content_type = encode_body(value, None)
    assert body == json.dumps(value).encode()
    assert content_type == b"application/json"


def test_encode_body_str_content_is_utf8_text_plain() -> None:
    body, content_type = encode_body(None, "h\u00e9 \U0001f600")
    assert body == "h\u00e9 \U0001f600".encode()
    assert content_type == b"text/plain; charset=utf-8"


@pytest.mark.parametrize("content", [b"\x00\xffraw", bytearray(b"raw"), memoryview(b"raw")])
def test_encode_body_bytes_content_is_sent_as_is_without_content_type(
    content: bytes | bytearray | memoryview,
) -> None:
    body, content_type = encode_body(None, content)  # type: ignore[arg-type]
    assert type(body) is bytes
    assert body == bytes(content)
    assert content_type is None


def test_encode_body_nothing_is_empty_without_content_type() -> None:
    assert encode_body(None, None) == (b"", None)


@pytest.mark.parametrize("content", ["x", b"x"])
def test_encode_body_refuses_both_json_and_content(content: str | bytes) -> None:
    with pytest.raises(LocalProtocolError, match="either json= or content="):
        encode_body({"a": 1}, content)


@pytest.mark.parametrize("value", [{"a": object()}, {1, 2}, b"bytes", {"k": 1j}])
def test_encode_body_refuses_non_serialisable_json(value: object) -> None:
    with pytest.raises(LocalProtocolError, match="not JSON-serialisable"):
        encode_body(value, None)


def test_encode_body_refuses_circular_json() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(LocalProtocolError, match="not JSON-serialisable"):
        encode_body(loop, None)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {"t": float("-inf")}])
def test_encode_body_refuses_nan_and_infinity_which_are_not_json(value: object) -> None:
    # RFC 8259 has no NaN/Infinity: json.dumps' default would emit invalid JSON.
    with pytest.raises(LocalProtocolError, match="not JSON-serialisable"):
        encode_body(value, None)


@pytest.mark.parametrize("content", [1, 1.5, ["a"], object()])
def test_encode_body_refuses_content_of_the_wrong_type(content: object) -> None:
    with pytest.raises(LocalProtocolError, match="content= must be bytes or str"):
        encode_body(None, content)  # type: ignore[arg-type]


# --- the direct writer against h11 whole ----------------------------------------------
#
# build_request writes the common request itself (checked with h11's own patterns)
# and hands anything else to h11. Whatever the input, the result must be what h11
# gives: the same bytes and an h11 state that reads the response the same way, or
# the same refusal.

_TOKEN = "-!#$%&'*+.^_`|~0123456789abcdefxyzABCXYZ"
_NAMES = [
    "Host",
    "host",
    "Content-Length",
    "content-length",
    "Transfer-Encoding",
    "Connection",
    "connection",
    "Upgrade",
    "Expect",
    "X-A",
    "accept",
    "Proxy-Authorization",
    "Content-Type",
]
_VALUES = [
    "close",
    "keep-alive",
    "Keep-Alive, close",
    "chunked",
    "Chunked",
    "gzip, chunked",
    "100-continue",
    "websocket",
    "5, 5",
    " 5",
    "5 ",
    "05",
    "",
    "a b",
    "a\tb",
    "v\u00e9",
    "x\r\ny",
    "x\n",
    "\x00",
    "\x7f",
    "example.com",
]


def _forced_through_h11(
    monkeypatch: pytest.MonkeyPatch, *args: object, **kwargs: object
) -> tuple[h11.Connection, bytes] | str:
    with monkeypatch.context() as patch:
        patch.setattr(http11, "_build_plain", lambda *_: None)
        return _outcome(*args, **kwargs)


def _outcome(*args: object, **kwargs: object) -> tuple[h11.Connection, bytes] | str:
    try:
        return build_request(*args, **kwargs)  # type: ignore[arg-type]
    except LocalProtocolError as exc:
        return f"refused: {exc}"


def _state(connection: h11.Connection) -> tuple[object, ...]:
    state = connection._cstate
    return (
        connection.our_state,
        connection.their_state,
        connection._request_method,
        state.keep_alive,
        frozenset(state.pending_switch_proposals),
        connection.client_is_waiting_for_100_continue,
    )


def _reads_response_alike(ours: h11.Connection, reference: h11.Connection) -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi"
    for connection in (ours, reference):
        connection.receive_data(head)
    for _ in range(4):  # Response, Data, EndOfMessage, then NEED_DATA or PAUSED.
        mine, theirs = _event(ours), _event(reference)
        assert repr(mine) == repr(theirs)
        assert _state(ours) == _state(reference)
        if mine in (h11.NEED_DATA, h11.PAUSED) or isinstance(mine, str):
            return


def _event(connection: h11.Connection) -> object:
    try:
        return connection.next_event()
    except h11.ProtocolError as exc:
        return f"{type(exc).__name__}: {exc}"


# What h11 accepts as a value (no CR/LF/NUL/DEL, no leading or trailing whitespace).
_GOOD_VALUES = [
    value
    for value in _VALUES
    if value == value.strip(" \t")
    and "\r" not in value
    and "\n" not in value
    and "\x00" not in value
    and "\x7f" not in value
]
_BAD = " :\r\n\x00\u00e9\x7f"


@st.composite
def requests(draw: st.DrawFn) -> tuple[tuple[object, ...], dict[str, object]]:
    """Mostly valid requests, some with a flaw h11 refuses, some only h11 may write."""
    body = draw(st.binary(max_size=40))
    flawed = draw(st.integers(0, 3)) == 0  # One in four may hold what h11 refuses.
    bad = _BAD if flawed else ""
    method = draw(
        st.one_of(
            st.sampled_from(["GET", "POST", "HEAD", "PUT", "DELETE", "CONNECT", "get", "PATCH"]),
            st.text(alphabet=_TOKEN + bad, min_size=1, max_size=6),
        )
    )
    length = len(body)
    value = st.one_of(
        st.sampled_from(_VALUES if flawed else _GOOD_VALUES),
        st.sampled_from([str(length), f"{length}, {length}", str(length + 1), f"0{length}"]),
        st.text(alphabet="ab9,\t" + bad, max_size=6).map(str.strip),
    )
    name = st.one_of(
        st.sampled_from(_NAMES),
        st.text(alphabet=_TOKEN + bad, min_size=0 if flawed else 1, max_size=6),
    )
    headers = draw(st.lists(st.tuples(name, value), max_size=5))
    if draw(st.booleans()):  # The caller frames the body: rightly, wrongly, oddly.
        lengths = [str(length), str(length + 1), f"{length}, {length}", "0" * 20 + str(length)]
        header = (
            draw(st.sampled_from(["Content-Length", "content-length"])),
            draw(st.sampled_from(lengths)),
        )
        headers.insert(draw(st.integers(0, len(headers))), header)
    if draw(st.integers(0, 3)) == 0:  # A header that changes h11's state or framing.
        stateful = [
            ("Connection", "close"),
            ("connection", "keep-alive"),
            ("Expect", "100-continue"),
            ("Upgrade", "websocket"),
            ("Transfer-Encoding", "chunked"),
        ]
        headers.insert(draw(st.integers(0, len(headers))), draw(st.sampled_from(stateful)))
    url = draw(
        st.sampled_from(
            [
                "http://example.com/api",
                "http://[::1]:8080/p?q=1",
                "https://h:8443/",
                "http://h/a%20b",
            ]
        )
    )
    args: tuple[object, ...] = (
        method,
        parse_url(url),
        headers,
        body,
        draw(st.sampled_from([None, b"text/x"])),
    )
    kwargs: dict[str, object] = {
        "absolute_form": draw(st.booleans()),
        "proxy_authorization": draw(st.sampled_from([None, b"Basic dTpw"])),
    }
    return args, kwargs


@settings(max_examples=200, deadline=None)
@given(request=requests())
def test_any_request_is_built_as_h11_builds_it_or_refused_alike(
    request: tuple[tuple[object, ...], dict[str, object]],
) -> None:
    args, kwargs = request
    ours = _outcome(*args, **kwargs)
    with pytest.MonkeyPatch.context() as monkeypatch:
        reference = _forced_through_h11(monkeypatch, *args, **kwargs)
    if isinstance(reference, str):
        assert ours == reference
        return
    assert not isinstance(ours, str), ours
    assert ours[1] == reference[1]
    assert _state(ours[0]) == _state(reference[0])
    _reads_response_alike(ours[0], reference[0])


@pytest.mark.parametrize(
    ("method", "headers", "body"),
    [
        ("POST", None, b'{"a":1}'),
        ("GET", None, b""),
        ("HEAD", None, b""),
        ("POST", {"Accept": "*/*", "X-Trace": "a b"}, b"x"),
        ("POST", [("X-A", "1"), ("Host", "other.example"), ("X-B", "2")], b""),
        ("PUT", {"Content-Length": "3"}, b"abc"),
        ("DELETE", {"authorization": "Bearer t\u00f6ken"}, b""),
        ("POST", {"Expect": "100-continue"}, b"abc"),
        ("CONNECT", None, b""),
    ],
)
def test_common_requests_are_written_directly_and_equal_h11s(
    method: str, headers: HeaderInput, body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = _forced_through_h11(monkeypatch, method, EXAMPLE, headers, body, None)
    assert not isinstance(reference, str)
    monkeypatch.setattr(http11, "_build_with_h11", _must_not_be_called)
    connection, data = build_request(method, EXAMPLE, headers, body, None)
    assert data == reference[1]
    assert _state(connection) == _state(reference[0])
    _reads_response_alike(connection, reference[0])


def _must_not_be_called(*_: object) -> None:
    raise AssertionError("went through h11 whole")


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"Connection": "close"}, b""),
        ({"Transfer-Encoding": "Chunked"}, b"abc"),
        ({"Content-Length": "3, 3"}, b"abc"),
        ({"Upgrade": "websocket"}, b""),
    ],
)
def test_headers_that_change_h11s_state_or_bytes_go_through_h11(
    headers: HeaderInput, body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[object] = []
    original = http11._build_with_h11

    def spy(*args: object) -> object:
        calls.append(args)
        return original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(http11, "_build_with_h11", spy)
    _, data = build_request("POST", EXAMPLE, headers, body, None)
    assert len(calls) == 1
    assert data.startswith(b"POST /api HTTP/1.1\r\nhost: example.com\r\n")


def test_a_request_asking_to_close_leaves_h11_expecting_to_close() -> None:
    connection, _ = build_request("GET", EXAMPLE, {"Connection": "close"}, b"", None)
    assert connection.our_state is h11.MUST_CLOSE
    connection, _ = build_request("GET", EXAMPLE, None, b"", None)
    assert connection.our_state is h11.DONE
