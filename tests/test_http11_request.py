"""Sans-IO request building: encode_body and build_request, checked against an h11 server."""

from __future__ import annotations

import json

import h11
import pytest
from hypothesis import given
from hypothesis import strategies as st

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
