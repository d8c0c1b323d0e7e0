"""Sans-IO CONNECT request building, checked against an h11 server."""

from __future__ import annotations

import base64
from urllib.parse import quote

import h11
import pytest
from hypothesis import given
from hypothesis import strategies as st

from acytoo_raw._proxy import build_connect_request
from acytoo_raw._urls import parse_proxy_url, parse_url

PLAIN_PROXY = parse_proxy_url("http://proxy.example:3128")


def server_parse_connect(data: bytes) -> h11.Request:
    """Parse ``data`` as one complete CONNECT request with an h11 server connection."""
    server = h11.Connection(h11.SERVER)
    server.receive_data(data)
    request = server.next_event()
    assert isinstance(request, h11.Request)
    assert isinstance(server.next_event(), h11.EndOfMessage)
    # The client asked to switch protocols: h11 pauses, with nothing unread.
    assert server.next_event() is h11.PAUSED
    assert server.trailing_data == (b"", False)
    return request


def header_values(request: h11.Request, name: bytes) -> list[bytes]:
    return [value for key, value in request.headers if key == name]


def test_connect_request_exact_bytes_without_credentials() -> None:
    _, data = build_connect_request(parse_url("https://example.com/api"), PLAIN_PROXY)
    assert data == b"CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n"


def test_connect_request_exact_bytes_with_credentials() -> None:
    proxy = parse_proxy_url("http://user:p%40ss@proxy.example:3128")
    _, data = build_connect_request(parse_url("https://example.com/"), proxy)
    assert data == (
        b"CONNECT example.com:443 HTTP/1.1\r\n"
        b"host: example.com:443\r\n"
        b"proxy-authorization: Basic dXNlcjpwQHNz\r\n"
        b"\r\n"
    )


@pytest.mark.parametrize(
    ("url", "authority"),
    [
        ("https://example.com/", b"example.com:443"),
        ("http://example.com/", b"example.com:80"),
        ("https://example.com:8443/", b"example.com:8443"),
        ("http://127.0.0.1:8000/", b"127.0.0.1:8000"),
        ("https://[::1]/", b"[::1]:443"),
        ("https://[::1]:8443/", b"[::1]:8443"),
        ("http://[2001:db8::1]/", b"[2001:db8::1]:80"),
        ("https://b\u00fccher.de/", b"xn--bcher-kva.de:443"),
    ],
)
def test_connect_target_and_host_are_host_colon_port_always_with_port(
    url: str, authority: bytes
) -> None:
    _, data = build_connect_request(parse_url(url), PLAIN_PROXY)
    assert data.startswith(b"CONNECT " + authority + b" HTTP/1.1\r\n")
    request = server_parse_connect(data)
    assert request.method == b"CONNECT"
    assert request.target == authority
    assert header_values(request, b"host") == [authority]


def test_connect_to_ipv6_target_is_bracketed() -> None:
    _, data = build_connect_request(parse_url("https://[::1]/"), PLAIN_PROXY)
    assert data.startswith(b"CONNECT [::1]:443 HTTP/1.1\r\nhost: [::1]:443\r\n")


def test_connect_request_never_carries_the_target_path_or_query() -> None:
    _, data = build_connect_request(
        parse_url("https://example.com/secret/path?token=abc"), PLAIN_PROXY
    )
    assert b"secret" not in data
    assert b"token" not in data


def test_no_proxy_authorization_without_credentials() -> None:
    _, data = build_connect_request(parse_url("https://example.com/"), PLAIN_PROXY)
    assert b"authorization" not in data.lower()
    assert header_values(server_parse_connect(data), b"proxy-authorization") == []


def test_proxy_authorization_is_basic_base64_of_percent_decoded_credentials() -> None:
    proxy = parse_proxy_url("http://us%3Ber:p%40ss%2Fw0rd@proxy.example:3128")
    _, data = build_connect_request(parse_url("https://example.com/"), proxy)
    request = server_parse_connect(data)
    [value] = header_values(request, b"proxy-authorization")
    assert value == b"Basic " + base64.b64encode(b"us;er:p@ss/w0rd")
    assert b"%40" not in base64.b64decode(value.removeprefix(b"Basic "))


def test_proxy_authorization_with_username_only() -> None:
    proxy = parse_proxy_url("http://alice@proxy.example:3128")
    _, data = build_connect_request(parse_url("https://example.com/"), proxy)
    [value] = header_values(server_parse_connect(data), b"proxy-authorization")
    assert value == b"Basic " + base64.b64encode(b"alice:")


def test_https_proxy_builds_the_same_connect_request() -> None:
    target = parse_url("https://example.com/")
    _, via_http = build_connect_request(target, parse_proxy_url("http://u:p@proxy.example:3128"))
    _, via_https = build_connect_request(target, parse_proxy_url("https://u:p@proxy.example:443"))
    assert via_http == via_https
    assert b"proxy.example" not in via_https  # the proxy's own address is not in the request


def test_connect_connection_waits_for_the_proxys_reply() -> None:
    connection, _ = build_connect_request(parse_url("https://example.com/"), PLAIN_PROXY)
    assert connection.our_role is h11.CLIENT
    assert connection.our_state is h11.MIGHT_SWITCH_PROTOCOL  # type: ignore[attr-defined]
    # The proxy's 200 switches the connection to a tunnel.
    connection.receive_data(b"HTTP/1.1 200 Connection established\r\n\r\n")
    response = connection.next_event()
    assert isinstance(response, h11.Response)
    assert response.status_code == 200
    assert connection.our_state is h11.SWITCHED_PROTOCOL  # type: ignore[comparison-overlap]


@given(
    user=st.text(min_size=1, max_size=30),
    password=st.text(max_size=30),
    port=st.integers(1, 65535),
)
def test_any_credentials_and_port_give_a_valid_connect_with_exact_basic_auth(
    user: str, password: str, port: int
) -> None:
    proxy = parse_proxy_url(f"http://{quote(user, safe='')}:{quote(password, safe='')}@proxy:3128")
    _, data = build_connect_request(parse_url(f"https://example.com:{port}/"), proxy)
    request = server_parse_connect(data)
    assert request.target == f"example.com:{port}".encode()
    [value] = header_values(request, b"proxy-authorization")
    scheme, _, token = value.partition(b" ")
    assert scheme == b"Basic"
    assert base64.b64decode(token, validate=True) == f"{user}:{password}".encode()
