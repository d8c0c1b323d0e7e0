"""URL parsing for targets and proxies, and proxy selection from the environment."""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import unicodedata
from urllib.parse import quote

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from acytoo_raw._environment import proxy_from_environment
from acytoo_raw._exceptions import AcytooError, LocalProtocolError
from acytoo_raw._urls import (
    URL,
    ProxyURL,
    check_base_url,
    join_url,
    parse_proxy_url,
    parse_url,
)

# --- parse_url: the happy paths ------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "scheme", "port", "is_tls"),
    [
        ("http://example.com/", "http", 80, False),
        ("https://example.com/", "https", 443, True),
        ("HTTP://example.com/", "http", 80, False),
        ("HtTpS://example.com/", "https", 443, True),
    ],
)
def test_parse_url_gives_default_port_per_scheme(
    url: str, scheme: str, port: int, is_tls: bool
) -> None:
    parsed = parse_url(url)
    assert (parsed.scheme, parsed.host, parsed.port, parsed.is_tls) == (
        scheme,
        "example.com",
        port,
        is_tls,
    )


@pytest.mark.parametrize(
    ("url", "port", "host_header"),
    [
        ("http://example.com:8080/", 8080, "example.com:8080"),
        ("https://example.com:8443/", 8443, "example.com:8443"),
        ("http://example.com:443/", 443, "example.com:443"),  # 443 is not http's default
        ("https://example.com:80/", 80, "example.com:80"),
        ("http://example.com:80/", 80, "example.com"),
        ("https://example.com:443/", 443, "example.com"),
        ("http://example.com:65535/", 65535, "example.com:65535"),
    ],
)
def test_parse_url_explicit_port_and_host_header_omits_only_the_default(
    url: str, port: int, host_header: str
) -> None:
    parsed = parse_url(url)
    assert parsed.port == port
    assert parsed.host_header == host_header
    assert parsed.authority == f"example.com:{port}"


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("http://example.com/api/completions", "/api/completions"),
        ("http://example.com/a/b?x=1&y=%20z", "/a/b?x=1&y=%20z"),
        ("http://example.com/path?q=1#frag", "/path?q=1"),
        ("http://example.com/path#frag?notquery", "/path"),
        ("http://example.com", "/"),
        ("http://example.com#frag", "/"),
        ("http://example.com?q=1", "/?q=1"),
        ("http://example.com:8080", "/"),
        ("http://example.com/%7Euser/", "/%7Euser/"),
    ],
)
def test_parse_url_keeps_path_and_query_drops_fragment_empty_path_is_slash(
    url: str, target: str
) -> None:
    assert parse_url(url).target == target


def test_parse_url_returns_url_value_object() -> None:
    assert parse_url("https://api.example.com:8443/v1?x=y") == URL(
        "https", "api.example.com", 8443, "/v1?x=y"
    )


def test_parse_url_lowercases_the_host() -> None:
    assert parse_url("http://EXAMPLE.Com/").host == "example.com"


@pytest.mark.parametrize(
    ("url", "port", "host_header", "authority"),
    [
        ("http://[::1]/", 80, "[::1]", "[::1]:80"),
        ("https://[::1]/", 443, "[::1]", "[::1]:443"),
        ("http://[::1]:8080/", 8080, "[::1]:8080", "[::1]:8080"),
        ("https://[2001:db8::1]:8443/x", 8443, "[2001:db8::1]:8443", "[2001:db8::1]:8443"),
    ],
)
def test_parse_url_ipv6_literal_is_bracketed_in_host_header_and_authority(
    url: str, port: int, host_header: str, authority: str
) -> None:
    parsed = parse_url(url)
    assert ":" in parsed.host
    assert not parsed.host.startswith("[")  # the bare address, for connecting
    assert parsed.port == port
    assert parsed.host_header == host_header
    assert parsed.authority == authority


def test_parse_url_ipv6_literal_is_canonicalised() -> None:
    assert parse_url("http://[0:0:0:0:0:0:0:1]/").host == "::1"
    assert parse_url("http://[2001:DB8:0::1]/").host == "2001:db8::1"


def test_parse_url_ipv4_literal_host() -> None:
    parsed = parse_url("http://127.0.0.1:8000/x")
    assert (parsed.host, parsed.port, parsed.host_header) == ("127.0.0.1", 8000, "127.0.0.1:8000")


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://b\u00fccher.de/", "xn--bcher-kva.de"),
        ("https://B\u00dcCHER.de/", "xn--bcher-kva.de"),
        ("http://\u4f8b\u3048.\u30c6\u30b9\u30c8/", "xn--r8jz45g.xn--zckzah"),
    ],
)
def test_parse_url_idna_host_is_punycoded(url: str, host: str) -> None:
    parsed = parse_url(url)
    assert parsed.host == host
    assert parsed.host.isascii()
    assert parsed.host_header == host


# --- parse_url: refusals -------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://user:pass@example.com/",
        "http://user@example.com/",
        "https://:pass@example.com/",
    ],
)
def test_parse_url_refuses_credentials(url: str) -> None:
    with pytest.raises(LocalProtocolError, match="credentials"):
        parse_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/",
        "ws://example.com/",
        "socks5://example.com/",
        "example.com/path",
        "//example.com/",
        "",
        "file:///etc/passwd",
    ],
)
def test_parse_url_refuses_unsupported_or_missing_scheme(url: str) -> None:
    with pytest.raises(LocalProtocolError, match="scheme"):
        parse_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com:0/",
        "http://example.com:65536/",
        "http://example.com:99999/",
        "http://example.com:-1/",
        "http://example.com:abc/",
        "http://example.com:8o/",
    ],
)
def test_parse_url_refuses_bad_port(url: str) -> None:
    with pytest.raises(LocalProtocolError, match="port"):
        parse_url(url)


@pytest.mark.parametrize("url", ["http://", "http:///path", "https://:443/", "http://?q"])
def test_parse_url_refuses_empty_host(url: str) -> None:
    with pytest.raises(LocalProtocolError, match="host"):
        parse_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/a\r\nX-Injected: 1",
        "http://example.com/\n",
        "http://example.com/\r",
        "http://exa mple.com/",
        "http://example.com/a b",
        "http://example.com/\t",
        "http://example.com/\x00",
        " http://example.com/",
    ],
)
def test_parse_url_refuses_whitespace_and_control_characters(url: str) -> None:
    with pytest.raises(LocalProtocolError, match="whitespace or control"):
        parse_url(url)


@pytest.mark.parametrize("url", ["http://[::1/", "http://[zz::1]/", "http://[1:2:3]/"])
def test_parse_url_refuses_malformed_ipv6_literal(url: str) -> None:
    with pytest.raises(LocalProtocolError):
        parse_url(url)


def test_parse_url_refuses_invalid_idna_host() -> None:
    with pytest.raises(LocalProtocolError, match="host"):
        parse_url("http://" + "\u00fc" * 64 + ".de/")


@pytest.mark.parametrize("url", [b"http://example.com/", None, 42])
def test_parse_url_refuses_non_str(url: object) -> None:
    with pytest.raises(LocalProtocolError, match="must be a str"):
        parse_url(url)  # type: ignore[arg-type]


def test_local_protocol_error_is_also_value_error_and_acytoo_error() -> None:
    with pytest.raises(ValueError, match="scheme") as info:
        parse_url("gopher://example.com/")
    assert isinstance(info.value, LocalProtocolError)
    assert isinstance(info.value, AcytooError)


@given(
    prefix=st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=10),
    bad=st.sampled_from(["\r", "\n", "\r\n", " ", "\t", "\x00"]),
    suffix=st.text(max_size=10),
)
def test_parse_url_and_proxy_url_refuse_any_url_with_cr_lf_space_tab_nul(
    prefix: str, bad: str, suffix: str
) -> None:
    url = f"http://example.com/{prefix}{bad}{suffix}"
    with pytest.raises(LocalProtocolError):
        parse_url(url)
    with pytest.raises(LocalProtocolError):
        parse_proxy_url(f"http://proxy.example:3128{bad}{suffix}")


@given(
    path=st.text(
        alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="#?%[]"),
    ),
    query=st.text(
        alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="#%")
    ),
)
def test_parse_url_target_is_path_and_query_verbatim(path: str, query: str) -> None:
    url = f"http://example.com/{path}" + (f"?{query}" if query else "")
    expected = f"/{path}" + (f"?{query}" if query else "")
    assert parse_url(url).target == expected


# --- parse_proxy_url -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "scheme", "port", "is_tls"),
    [
        ("http://proxy.example:3128", "http", 3128, False),
        ("https://proxy.example:8443", "https", 8443, True),
        ("http://proxy.example", "http", 80, False),
        ("https://proxy.example", "https", 443, True),
        ("http://proxy.example:3128/", "http", 3128, False),
    ],
)
def test_parse_proxy_url_http_and_https(url: str, scheme: str, port: int, is_tls: bool) -> None:
    proxy = parse_proxy_url(url)
    assert (proxy.scheme, proxy.host, proxy.port, proxy.is_tls) == (
        scheme,
        "proxy.example",
        port,
        is_tls,
    )
    assert proxy.username is None
    assert proxy.password is None
    assert proxy.authorization() is None


def test_parse_proxy_url_percent_decodes_credentials() -> None:
    proxy = parse_proxy_url("http://us%20er:p%40ss@proxy.example:3128")
    assert proxy.username == "us er"
    assert proxy.password == "p@ss"
    assert proxy.host == "proxy.example"
    assert proxy.port == 3128


def test_proxy_authorization_is_exactly_basic_base64_of_user_colon_pass() -> None:
    proxy = parse_proxy_url("http://user:p%40ss@proxy.example:3128")
    assert proxy.authorization() == b"Basic dXNlcjpwQHNz"
    assert proxy.authorization() == b"Basic " + base64.b64encode(b"user:p@ss")


def test_proxy_authorization_with_username_only_has_empty_password() -> None:
    proxy = parse_proxy_url("http://user@proxy.example:3128")
    assert proxy.authorization() == b"Basic " + base64.b64encode(b"user:")


def test_proxy_authorization_encodes_non_ascii_credentials_as_utf8() -> None:
    proxy = parse_proxy_url("http://j%C3%B6rg:p%C3%A4ss@proxy.example:3128")
    assert (proxy.username, proxy.password) == ("j\u00f6rg", "p\u00e4ss")
    assert proxy.authorization() == b"Basic " + base64.b64encode("j\u00f6rg:p\u00e4ss".encode())


@given(user=st.text(min_size=1), password=st.text())
def test_proxy_authorization_round_trips_any_percent_encoded_credentials(
    user: str, password: str
) -> None:
    url = f"http://{quote(user, safe='')}:{quote(password, safe='')}@proxy.example:3128"
    proxy = parse_proxy_url(url)
    assert (proxy.username, proxy.password) == (user, password)
    authorization = proxy.authorization()
    assert authorization is not None
    scheme, _, token = authorization.partition(b" ")
    assert scheme == b"Basic"
    assert base64.b64decode(token, validate=True) == f"{user}:{password}".encode()


def test_proxy_repr_never_shows_the_password() -> None:
    proxy = parse_proxy_url("http://alice:s3cr3t-pw@proxy.example:3128")
    assert repr(proxy) == "ProxyURL('http://alice:***@proxy.example:3128')"
    assert "s3cr3t" not in str(proxy)
    assert "s3cr3t" not in f"{proxy!r} {[proxy]} {(proxy,)}"


def test_proxy_repr_without_credentials_and_with_ipv6() -> None:
    assert repr(parse_proxy_url("http://[::1]:3128")) == "ProxyURL('http://[::1]:3128')"


@given(password=st.text(min_size=1))
def test_proxy_repr_is_fixed_whatever_the_password(password: str) -> None:
    proxy = ProxyURL("http", "proxy.example", 3128, "alice", password)
    assert repr(proxy) == "ProxyURL('http://alice:***@proxy.example:3128')"
    assume(password not in "ProxyURL('http://alice:***@proxy.example:3128')")
    assert password not in repr(proxy)


@pytest.mark.parametrize(
    "url",
    [
        "http://proxy.example:3128/path",
        "http://proxy.example:3128/proxy/",
        "http://proxy.example:3128?x=1",
        "http://proxy.example:3128/?x=1",
    ],
)
def test_parse_proxy_url_refuses_path_or_query(url: str) -> None:
    with pytest.raises(LocalProtocolError, match="no path, query or fragment"):
        parse_proxy_url(url)


@pytest.mark.parametrize(
    "url", ["socks4://p:1080", "socks://p:1080", "ftp://p:21", "proxy.example:3128"]
)
def test_parse_proxy_url_refuses_unsupported_scheme(url: str) -> None:
    with pytest.raises(LocalProtocolError, match="scheme"):
        parse_proxy_url(url)


@pytest.mark.parametrize("url", ["http://:3128", "http://", "https://user:pw@:8080"])
def test_parse_proxy_url_refuses_missing_host(url: str) -> None:
    with pytest.raises(LocalProtocolError, match="no host"):
        parse_proxy_url(url)


@pytest.mark.parametrize("url", ["http://proxy.example:0", "http://proxy.example:70000"])
def test_parse_proxy_url_refuses_bad_port(url: str) -> None:
    with pytest.raises(LocalProtocolError, match="port"):
        parse_proxy_url(url)


# --- proxy_from_environment ----------------------------------------------------------

HTTPS_TARGET = parse_url("https://api.example.com/")
HTTP_TARGET = parse_url("http://api.example.com/")


def test_https_target_uses_https_proxy() -> None:
    env = {"HTTPS_PROXY": "http://secure:1", "HTTP_PROXY": "http://plain:2"}
    assert proxy_from_environment(HTTPS_TARGET, env) == "http://secure:1"


def test_http_target_uses_http_proxy() -> None:
    env = {"HTTPS_PROXY": "http://secure:1", "HTTP_PROXY": "http://plain:2"}
    assert proxy_from_environment(HTTP_TARGET, env) == "http://plain:2"


def test_https_target_ignores_http_proxy() -> None:
    assert proxy_from_environment(HTTPS_TARGET, {"HTTP_PROXY": "http://plain:2"}) is None


def test_no_proxy_variables_means_no_proxy() -> None:
    assert proxy_from_environment(HTTPS_TARGET, {}) is None
    assert proxy_from_environment(HTTP_TARGET, {"PATH": "/usr/bin"}) is None


@pytest.mark.parametrize("name", ["ALL_PROXY", "all_proxy"])
def test_all_proxy_is_the_fallback_for_both_schemes(name: str) -> None:
    env = {name: "http://all:3"}
    assert proxy_from_environment(HTTPS_TARGET, env) == "http://all:3"
    assert proxy_from_environment(HTTP_TARGET, env) == "http://all:3"


def test_scheme_specific_proxy_beats_all_proxy() -> None:
    env = {"ALL_PROXY": "http://all:3", "HTTPS_PROXY": "http://secure:1"}
    assert proxy_from_environment(HTTPS_TARGET, env) == "http://secure:1"
    assert proxy_from_environment(HTTP_TARGET, env) == "http://all:3"


def test_lower_case_name_wins_over_upper_case() -> None:
    env = {"HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:1"}
    assert proxy_from_environment(HTTPS_TARGET, env) == "http://lower:1"
    env = {"ALL_PROXY": "http://upper:3", "all_proxy": "http://lower:3"}
    assert proxy_from_environment(HTTP_TARGET, env) == "http://lower:3"


def test_lower_case_no_proxy_wins_over_upper_case() -> None:
    env = {"HTTPS_PROXY": "http://p:1", "no_proxy": "other.org", "NO_PROXY": "*"}
    assert proxy_from_environment(HTTPS_TARGET, env) == "http://p:1"


@pytest.mark.parametrize("empty", ["", "   "])
def test_empty_values_are_ignored(empty: str) -> None:
    assert proxy_from_environment(HTTPS_TARGET, {"HTTPS_PROXY": empty}) is None
    env = {"HTTPS_PROXY": empty, "ALL_PROXY": "http://all:3"}
    assert proxy_from_environment(HTTPS_TARGET, env) == "http://all:3"
    env = {"HTTPS_PROXY": "http://p:1", "NO_PROXY": empty}
    assert proxy_from_environment(HTTPS_TARGET, env) == "http://p:1"


@pytest.mark.parametrize("empty", ["", "   ", "\t"])
def test_empty_or_blank_lower_case_value_falls_through_to_upper_case(empty: str) -> None:
    # A blank value is ignored like an empty one: it must not hide HTTPS_PROXY.
    env = {"https_proxy": empty, "HTTPS_PROXY": "http://upper:1"}
    assert proxy_from_environment(HTTPS_TARGET, env) == "http://upper:1"


def test_proxy_value_is_stripped_of_surrounding_whitespace() -> None:
    assert proxy_from_environment(HTTPS_TARGET, {"HTTPS_PROXY": " http://p:1 \n"}) == "http://p:1"


def _bypassed(url: str, no_proxy: str) -> bool:
    env = {"HTTPS_PROXY": "http://p:1", "HTTP_PROXY": "http://p:1", "NO_PROXY": no_proxy}
    result = proxy_from_environment(parse_url(url), env)
    assert result in (None, "http://p:1")
    return result is None


@pytest.mark.parametrize(
    ("url", "no_proxy"),
    [
        ("https://api.example.com/", "*"),
        ("https://[::1]/", "*"),
        ("https://api.example.com/", "api.example.com"),
        ("https://api.example.com/", "API.Example.COM"),
        ("https://api.example.com/", "example.com"),
        ("https://api.example.com/", ".example.com"),
        ("https://deep.api.example.com/", "example.com"),
        ("https://example.com/", "example.com"),
        ("https://example.com/", ".example.com"),
        ("https://api.example.com/", "other.org,example.com"),
        ("https://api.example.com/", " other.org , example.com "),
        ("https://api.example.com/", "other.org example.com"),
        ("https://api.example.com/", "example.com:443"),
        ("http://api.example.com:8080/", "api.example.com:8080"),
        ("http://127.0.0.1:8000/", "127.0.0.1"),
        ("http://127.0.0.1:8000/", "localhost,127.0.0.1:8000"),
        ("https://[::1]/", "[::1]"),
        ("https://[::1]/", "::1"),
        ("https://[::1]/", "[::1]:443"),
        ("https://[2001:db8::1]:8443/", "2001:db8::1"),
        ("https://[2001:db8::1]:8443/", "[2001:db8::1]:8443"),
    ],
)
def test_no_proxy_entry_bypasses_the_proxy(url: str, no_proxy: str) -> None:
    assert _bypassed(url, no_proxy)


@pytest.mark.parametrize(
    ("url", "no_proxy"),
    [
        ("https://notexample.com/", "example.com"),
        ("https://notexample.com/", ".example.com"),
        ("https://api.notexample.com/", "example.com"),
        ("https://example.com/", "api.example.com"),
        ("https://example.com.evil.org/", "example.com"),
        ("https://api.example.com/", "le.com"),
        ("https://api.example.com/", "other.org"),
        ("https://api.example.com/", "example.com:8443"),
        ("http://api.example.com:8080/", "api.example.com:9090"),
        ("https://[::1]/", "[::1]:80"),
        ("https://[::1]/", "[::2]"),
        ("https://[2001:db8::1]/", "db8::1"),
        ("http://127.0.0.1:8000/", "127.0.0.2"),
        ("http://127.0.0.10:8000/", "127.0.0.1"),
        ("https://api.example.com/", ","),
    ],
)
def test_no_proxy_entry_that_does_not_match_keeps_the_proxy(url: str, no_proxy: str) -> None:
    assert not _bypassed(url, no_proxy)


def test_no_proxy_applies_to_all_proxy_too() -> None:
    env = {"ALL_PROXY": "http://all:3", "no_proxy": "example.com"}
    assert proxy_from_environment(HTTPS_TARGET, env) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://alice:s\uff03cret@proxy:3128",  # urlsplit would quote the netloc
        "http://alice:s3#cret@proxy:3128",  # unescaped '#': the rest looks like a fragment
        "http://alice:12#34@proxy:3128",
        "http://alice:s3cret@proxy:3128#frag",
    ],
)
def test_proxy_url_errors_never_show_the_password(url: str) -> None:
    with pytest.raises(LocalProtocolError) as caught:
        parse_proxy_url(url)
    secret = url.split(":")[2].split("@")[0]
    shown = f"{caught.value} {caught.value.__cause__} {caught.value.__context__}"
    assert secret not in shown
    assert secret.split("#")[0] not in shown.replace("proxy URL", "")


def test_environment_proxy_without_scheme_is_http() -> None:
    target = parse_url("https://api.example/x")
    assert proxy_from_environment(target, {"HTTPS_PROXY": "proxy.corp:3128"}) == (
        "http://proxy.corp:3128"
    )


@pytest.mark.parametrize("control", ["\x01", "\x7f", "\x1b", "\x0b"])
def test_control_characters_anywhere_in_a_url_are_refused(control: str) -> None:
    with pytest.raises(LocalProtocolError, match="control"):
        parse_url(f"http://a{control}b/")


# --- SOCKS5 proxy URLs ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "scheme", "port", "is_socks", "remote_dns"),
    [
        ("socks5://proxy.example", "socks5", 1080, True, False),
        ("socks5h://proxy.example", "socks5h", 1080, True, True),
        ("SOCKS5H://proxy.example", "socks5h", 1080, True, True),
        ("Socks5://proxy.example/", "socks5", 1080, True, False),
        ("socks5://proxy.example:9050", "socks5", 9050, True, False),
        ("socks5h://proxy.example:1", "socks5h", 1, True, True),
        ("http://proxy.example", "http", 80, False, False),
        ("https://proxy.example", "https", 443, False, False),
    ],
)
def test_parse_proxy_url_socks5_default_port_and_flags(
    url: str, scheme: str, port: int, is_socks: bool, remote_dns: bool
) -> None:
    proxy = parse_proxy_url(url)
    assert (proxy.scheme, proxy.host, proxy.port) == (scheme, "proxy.example", port)
    assert (proxy.is_socks, proxy.remote_dns) == (is_socks, remote_dns)
    assert proxy.is_tls == (scheme == "https")
    assert (proxy.username, proxy.password) == (None, None)


def test_parse_proxy_url_socks5_ipv6_and_idna_host() -> None:
    assert parse_proxy_url("socks5://[::1]:1080").host == "::1"
    assert parse_proxy_url("socks5h://fa\u00df.de").host == "xn--fa-hia.de"


def test_parse_proxy_url_socks5_percent_decodes_credentials() -> None:
    proxy = parse_proxy_url("socks5h://us%20er:p%40ss%2F%23@proxy.example:1080")
    assert (proxy.username, proxy.password) == ("us er", "p@ss/#")
    assert proxy.remote_dns


def test_socks_proxy_repr_never_shows_the_password() -> None:
    proxy = parse_proxy_url("socks5h://alice:s3cr3t-pw@proxy.example")
    assert repr(proxy) == "ProxyURL('socks5h://alice:***@proxy.example:1080')"
    assert "s3cr3t" not in f"{proxy!r} {proxy} {[proxy]}"


@given(
    user=st.text(min_size=1, max_size=60),
    password=st.text(max_size=60),
    scheme=st.sampled_from(["socks5", "socks5h"]),
)
def test_socks_credentials_round_trip_when_rfc1929_can_carry_them(
    user: str, password: str, scheme: str
) -> None:
    url = f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@proxy.example"
    proxy = parse_proxy_url(url)
    assert (proxy.username, proxy.password, proxy.port) == (user, password, 1080)
    assert repr(proxy) == f"ProxyURL('{scheme}://{user}:***@proxy.example:1080')"


@pytest.mark.parametrize(
    ("userinfo", "match"),
    [
        ("u" * 256 + ":pw", "user name is longer than 255 bytes"),
        ("\u00e9" * 128 + ":pw", "user name is longer than 255 bytes"),  # 256 bytes of UTF-8
        ("alice:" + "s3cr3t" * 43, "password is longer than 255 bytes"),  # 258 bytes
        (":s3cr3t", "user name is empty"),
    ],
)
def test_socks_credentials_rfc1929_cannot_carry_are_refused_without_echo(
    userinfo: str, match: str
) -> None:
    user, _, password = userinfo.partition(":")
    url = f"socks5://{quote(user, safe='')}:{quote(password, safe='')}@proxy.example"
    with pytest.raises(LocalProtocolError, match=match) as caught:
        parse_proxy_url(url)
    assert "s3cr3t" not in str(caught.value)
    assert "pw" not in str(caught.value).replace("password", "")


def test_socks_credentials_at_the_rfc1929_limit_are_accepted() -> None:
    proxy = parse_proxy_url(f"socks5://{'u' * 255}:{'p' * 255}@proxy.example")
    assert (len(proxy.username or ""), len(proxy.password or "")) == (255, 255)
    # An HTTP proxy has no such limit: Basic auth carries any length.
    assert parse_proxy_url(f"http://{'u' * 300}@proxy.example").username == "u" * 300


@pytest.mark.parametrize(
    "url",
    ["socks5://proxy.example:1080/x", "socks5h://proxy.example?x", "socks5://p:1080#f"],
)
def test_socks_proxy_url_refuses_path_query_fragment(url: str) -> None:
    with pytest.raises(LocalProtocolError, match="no path, query or fragment"):
        parse_proxy_url(url)


@pytest.mark.parametrize(
    "url", ["socks5://example.com/", "socks5h://example.com/", "SOCKS5://example.com/"]
)
def test_target_url_stays_http_or_https_only(url: str) -> None:
    with pytest.raises(LocalProtocolError, match=r"must start with http:// or https://"):
        parse_url(url)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("socks4", "p", 1080), "unsupported proxy URL scheme 'socks4'"),
        (("SOCKS5", "p", 1080), "unsupported proxy URL scheme"),
        (("socks5", "", 1080), "no host"),
        (("socks5", "p", 0), "port"),
        (("socks5", "p", 65536), "port"),
        (("socks5", "p", True), "port"),
        (("socks5", "p", 1080, None, "s3cr3t"), "password needs a user name"),
        (("socks5", "p", 1080, "alice", "\ud800"), "password is not valid"),
    ],
)
def test_proxy_url_constructor_validates(args: tuple[object, ...], match: str) -> None:
    with pytest.raises(LocalProtocolError, match=match) as caught:
        ProxyURL(*args)  # type: ignore[arg-type]
    assert "s3cr3t" not in str(caught.value)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("ftp", "h", 21, "/"), "scheme"),
        (("HTTP", "h", 80, "/"), "scheme"),
        (("http", "", 80, "/"), "no host"),
        (("http", "h", 0, "/"), "port"),
        (("http", "h", 80, "x"), "target"),
    ],
)
def test_url_constructor_validates(args: tuple[object, ...], match: str) -> None:
    with pytest.raises(LocalProtocolError, match=match):
        URL(*args)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["ALL_PROXY", "HTTPS_PROXY", "all_proxy"])
def test_environment_may_name_a_socks_proxy(name: str) -> None:
    value = proxy_from_environment(HTTPS_TARGET, {name: "socks5h://u:p@127.0.0.1:1080"})
    assert value == "socks5h://u:p@127.0.0.1:1080"
    proxy = parse_proxy_url(value)
    assert (proxy.is_socks, proxy.remote_dns, proxy.port) == (True, True, 1080)


# --- URLs without a scheme -----------------------------------------------------------

PROXY_NEEDS_SCHEME = (
    "proxy URL needs a scheme: http://, https://, socks5:// or socks5h:// (got no scheme)"
)


@pytest.mark.parametrize(
    "url",
    [
        "127.0.0.1:3128",
        "localhost:3128",  # urlsplit reads this as scheme "localhost"
        "proxy.example:3128",  # ... and this as scheme "proxy.example"
        "proxy.example",
        "[::1]:3128",
        "alice:s3cr3t@proxy.example:3128",  # ... and this as scheme "alice"
        "alice:s3cr3t@127.0.0.1:3128",
        "//proxy.example:3128",
        "",
        ":3128",
    ],
)
def test_scheme_less_proxy_url_says_what_was_expected(url: str) -> None:
    with pytest.raises(LocalProtocolError) as caught:
        parse_proxy_url(url)
    assert str(caught.value) == PROXY_NEEDS_SCHEME
    assert "s3cr3t" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("socks4://p:1080", "unsupported proxy URL scheme 'socks4'"),
        ("http:proxy.example:3128", "unsupported proxy URL scheme 'http:' without '//'"),
        ("socks5:/p", "unsupported proxy URL scheme 'socks5:' without '//'"),
    ],
)
def test_proxy_url_with_wrong_scheme_names_it_and_lists_the_good_ones(
    url: str, message: str
) -> None:
    with pytest.raises(LocalProtocolError) as caught:
        parse_proxy_url(url)
    assert str(caught.value) == f"{message}: use http://, https://, socks5:// or socks5h://"


@pytest.mark.parametrize(
    "url",
    [
        "",
        "example.com/x",
        "example.com",
        "127.0.0.1:8000",
        "127.0.0.1:8000/api/completions",
        "localhost:8000",
        "localhost:8000/x",
        "//example.com/",
        "/api/completions",
        "[::1]:8000",
    ],
)
def test_scheme_less_url_says_what_was_expected(url: str) -> None:
    with pytest.raises(LocalProtocolError) as caught:
        parse_url(url)
    assert str(caught.value) == "URL must start with http:// or https:// (got no scheme)"


@pytest.mark.parametrize(
    ("url", "got"),
    [
        ("ftp://example.com/", "scheme 'ftp'"),
        ("FTP://example.com/", "scheme 'ftp'"),
        ("socks5h://example.com/", "scheme 'socks5h'"),
        ("http:example.com", "scheme 'http:' without '//'"),
        ("HTTPS:/example.com", "scheme 'https:' without '//'"),
        ("mailto:a@example.com", "no scheme"),
    ],
)
def test_url_with_wrong_scheme_names_it(url: str, got: str) -> None:
    with pytest.raises(LocalProtocolError) as caught:
        parse_url(url)
    assert str(caught.value) == f"URL must start with http:// or https:// (got {got})"


@given(password=st.text(min_size=4, alphabet=st.characters(codec="utf-8")), port=st.integers())
def test_scheme_less_proxy_url_never_echoes_the_password(password: str, port: int) -> None:
    url = f"alice:{password}@proxy.example:{port}"
    with pytest.raises(LocalProtocolError) as caught:
        parse_proxy_url(url)
    assume(password not in PROXY_NEEDS_SCHEME)
    assert password not in str(caught.value)


@settings(max_examples=200, deadline=None)
@given(text=st.text())
def test_any_text_parses_or_raises_local_protocol_error(text: str) -> None:
    for parse in (parse_url, parse_proxy_url, check_base_url):
        with contextlib.suppress(LocalProtocolError):
            parse(text)
    with contextlib.suppress(LocalProtocolError):
        join_url("http://h/v1", text)


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(alphabet="htpsocks5:/[]@.1%#?x\u00df\u3002\uff11", max_size=30),
)
def test_url_like_text_parses_or_raises_local_protocol_error(text: str) -> None:
    for parse in (parse_url, parse_proxy_url, check_base_url):
        with contextlib.suppress(LocalProtocolError):
            parse(text)


# --- NO_PROXY: CIDR networks and IP addresses ----------------------------------------


@pytest.mark.parametrize(
    ("url", "no_proxy"),
    [
        ("http://127.0.0.1:8000/", "127.0.0.0/8"),
        ("http://127.255.3.4/", "127.0.0.0/8"),
        ("http://10.1.2.3/", "10.0.0.0/8"),
        ("http://10.1.2.3/", "10.1.2.3/8"),  # host bits set: the network all the same
        ("http://10.1.2.3/", "10.1.2.3/32"),
        ("http://192.168.7.9/", "example.com, 192.168.0.0/16"),
        ("http://192.168.7.9/", "10.0.0.0/99,192.168.0.0/16"),  # a bad entry is skipped
        ("https://[::1]/", "::1/128"),
        ("https://[::1]/", "[::1]/128"),
        ("https://[::1]:8443/", "::/0"),
        ("https://[fe80::1]/", "fe80::/10"),
        ("https://[febf:ffff::1]/", "[fe80::]/10"),
        ("https://[2001:db8::5]/", "2001:DB8::/32"),
        ("https://[::1]/", "0:0:0:0:0:0:0:1"),  # a bare address compares as an address
        ("https://[::1]/", "[0::1]:443"),
        ("http://127.0.0.1/", ".127.0.0.1"),
    ],
)
def test_no_proxy_cidr_entry_bypasses_for_addresses_inside(url: str, no_proxy: str) -> None:
    assert _bypassed(url, no_proxy)


@pytest.mark.parametrize(
    ("url", "no_proxy"),
    [
        ("http://11.0.0.1/", "10.0.0.0/8"),
        ("http://128.0.0.1/", "127.0.0.0/8"),
        ("https://[fec0::1]/", "fe80::/10"),
        ("http://127.0.0.1/", "::1/128"),  # IPv4 target, IPv6 network
        ("https://[::1]/", "127.0.0.0/8"),  # and the other way round
        ("http://127.0.0.1/", "::/0"),
        ("http://localhost/", "127.0.0.0/8"),  # names are not resolved
        ("https://api.example.com/", "10.0.0.0/8"),
        ("http://10.0.0.1/", "10.0.0.0/33"),  # invalid entries are ignored
        ("http://10.0.0.1/", "10.0.0.0/"),
        ("http://10.0.0.1/", "10.0.0.0/x"),
        ("http://10.0.0.1/", "example.com/8"),
        ("http://10.0.0.1/", "/8"),
        ("http://10.0.0.1/", "/"),
        ("http://10.0.0.1/", "10.0.0.0/8:80"),
        ("http://10.0.0.1/", "[10.0.0.0]/8x"),
        ("http://127.0.0.1/", "0.0.1"),  # an address matches only itself, never as a suffix
        ("http://127.0.0.1/", "0.1"),
        ("https://[2001:db8::1]/", "::1"),
    ],
)
def test_no_proxy_cidr_entry_keeps_the_proxy_outside_or_when_invalid(
    url: str, no_proxy: str
) -> None:
    assert not _bypassed(url, no_proxy)


def test_no_proxy_port_with_non_ascii_digits_is_ignored_not_raised() -> None:
    # "\u00b2".isdigit() is true, but int() refuses it.
    assert _bypassed("https://api.example.com/", "api.example.com:\u00b2")
    assert not _bypassed("https://api.example.com/", "other.org:\u00b2")


@settings(max_examples=200, deadline=None)
@given(no_proxy=st.text())
@example("api.example.com:\u00b2")  # "\u00b2".isdigit(), but int() refuses it
@example("10.0.0.0/99")
def test_no_proxy_never_raises_on_any_text(no_proxy: str) -> None:
    for target in (HTTPS_TARGET, parse_url("http://10.0.0.1:80/"), parse_url("http://[fe80::1]/")):
        env = {"HTTPS_PROXY": "http://p:1", "HTTP_PROXY": "http://p:1", "NO_PROXY": no_proxy}
        assert proxy_from_environment(target, env) in (None, "http://p:1")


@settings(max_examples=200, deadline=None)
@given(no_proxy=st.text(alphabet="0123456789abcdef.:/[], *\u00b2", max_size=40))
def test_no_proxy_never_raises_on_address_like_text(no_proxy: str) -> None:
    for target in (parse_url("http://10.0.0.1:80/"), parse_url("http://[fe80::1]/")):
        env = {"HTTP_PROXY": "http://p:1", "NO_PROXY": no_proxy}
        assert proxy_from_environment(target, env) in (None, "http://p:1")


@given(address=st.ip_addresses(v=4), prefix=st.integers(0, 32))
def test_no_proxy_cidr_matches_exactly_the_network(
    address: ipaddress.IPv4Address, prefix: int
) -> None:
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    assert _bypassed(f"http://{address}/", str(network))
    assert _bypassed(f"http://{address}/", f"{address}/{prefix}")  # host bits set
    for outside in (int(network.network_address) - 1, int(network.broadcast_address) + 1):
        if 0 <= outside < 2**32:
            assert not _bypassed(f"http://{ipaddress.IPv4Address(outside)}/", str(network))


# --- IDNA 2008 / UTS #46 hosts -------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "encoded"),
    [
        ("fa\u00df.de", "xn--fa-hia.de"),  # IDNA 2003 gave "fass.de": another domain
        ("FA\u00df.de", "xn--fa-hia.de"),
        ("b\u00fccher.de", "xn--bcher-kva.de"),
        ("bu\u0308cher.de", "xn--bcher-kva.de"),  # decomposed: NFC first
        ("\u4f8b\u3048\u3002\u30c6\u30b9\u30c8", "xn--r8jz45g.xn--zckzah"),  # ideographic dot
        ("\u4f8b\u3048\uff0e\u30c6\u30b9\u30c8", "xn--r8jz45g.xn--zckzah"),  # full-width dot
        ("\u03c2.gr", "xn--3xa.gr"),  # final sigma kept, as IDNA 2008 says
        ("b\u00fccher.de.", "xn--bcher-kva.de."),
        ("api.b\u00fccher.de", "api.xn--bcher-kva.de"),
    ],
)
def test_non_ascii_host_uses_idna_2008(host: str, encoded: str) -> None:
    assert parse_url(f"http://{host}/x").host == encoded
    assert parse_proxy_url(f"socks5h://{host}:1080").host == encoded


@pytest.mark.parametrize(
    "host",
    [
        "\uff11\uff12\uff17.\uff10.\uff10.\uff11",  # full-width 127.0.0.1
        "127\u30020\u30020\u30021",  # 127.0.0.1 with ideographic full stops
        "127\uff0e0\uff0e0\uff0e1",
        "example\u3002com",
        "xn--fa-hia\u3002de",
        "\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com",  # full-width "example"
        "\u2603.net",  # snowman: valid in IDNA 2003, disallowed in 2008
        "a\u200db.de",  # a zero-width joiner outside its context
        "\u00fc" * 64 + ".de",  # label longer than 63
        "b\u00fccher..de",  # empty label
    ],
)
def test_non_ascii_host_that_idna_2008_refuses_or_that_would_fold_to_ascii(host: str) -> None:
    with pytest.raises(LocalProtocolError, match="invalid host name") as caught:
        parse_url(f"http://{host}/")
    assert repr(unicodedata.normalize("NFC", host).lower()) in str(caught.value)
    with pytest.raises(LocalProtocolError, match="proxy URL has an invalid host name"):
        parse_proxy_url(f"http://{host}:3128")


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://Example.COM/", "example.com"),
        ("http://xn--fa-hia.de/", "xn--fa-hia.de"),
        ("http://XN--FA-HIA.de/", "xn--fa-hia.de"),
        ("http://under_score.example/", "under_score.example"),
        ("http://localhost/", "localhost"),
    ],
)
def test_ascii_host_is_only_lower_cased(url: str, host: str) -> None:
    assert parse_url(url).host == host


@settings(max_examples=200, deadline=None)
@given(
    host=st.text(
        alphabet=st.characters(exclude_characters="/?#@:[]"), min_size=1, max_size=30
    ).filter(lambda h: not h.isascii())
)
@example("127\u30020\u30020\u30021")
@example("\uff11\uff12\uff17.0.0.1")
def test_non_ascii_host_gives_an_ascii_idna_name_or_local_protocol_error(host: str) -> None:
    # Whatever the text, never an ASCII name the user did not type.
    try:
        parsed = parse_url(f"http://{host}/")
    except LocalProtocolError:
        return
    assert parsed.host.isascii()
    assert any(label.startswith("xn--") for label in parsed.host.split("."))


# --- base_url: check_base_url and join_url -------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "url", "expected"),
    [
        ("http://h/v1", "chat/completions", "http://h/v1/chat/completions"),
        ("http://h/v1", "/chat/completions", "http://h/v1/chat/completions"),
        ("http://h/v1/", "chat/completions", "http://h/v1/chat/completions"),
        ("http://h/v1/", "/chat/completions", "http://h/v1/chat/completions"),
        ("http://h", "x", "http://h/x"),
        ("http://h", "/x", "http://h/x"),
        ("http://h/", "x", "http://h/x"),
        ("http://h", "", "http://h/"),
        ("http://h/v1", "", "http://h/v1/"),
        ("http://h/v1", "x?a=1&b=2", "http://h/v1/x?a=1&b=2"),
        ("http://h/v1", "?a=1", "http://h/v1/?a=1"),
        ("http://h/v1", "x#frag", "http://h/v1/x#frag"),
        ("http://h/a/b", "c/d", "http://h/a/b/c/d"),
        ("http://h/v1", "../x", "http://h/v1/../x"),  # sent as written: no dot-segment removal
        ("HTTP://H:80/v1", "x", "http://h/v1/x"),
        ("https://h:443/v1", "x", "https://h/v1/x"),
        ("https://h:8443/v1", "x", "https://h:8443/v1/x"),
        ("http://127.0.0.1:8000", "/api/completions", "http://127.0.0.1:8000/api/completions"),
        ("http://[::1]:8000/api", "completions", "http://[::1]:8000/api/completions"),
        ("http://b\u00fccher.de/\u00e4", "x", "http://xn--bcher-kva.de/%C3%A4/x"),
        ("http://h/v1", "http:x", "http://h/v1/http:x"),  # no "//": a path
    ],
)
def test_join_url_appends_relative_url_to_base_path(base_url: str, url: str, expected: str) -> None:
    assert join_url(base_url, url) == expected


@pytest.mark.parametrize("base_url", [None, "http://h/v1", "https://other.example/"])
@pytest.mark.parametrize(
    "url",
    [
        "http://a.example/b",
        "https://a.example:8443/b?c",
        "HTTP://A.example/b",
        "HtTpS://a.example/",
        "ftp://a.example/",  # returned as is: parse_url refuses it with its own message
    ],
)
def test_join_url_uses_absolute_url_as_is(base_url: str | None, url: str) -> None:
    assert join_url(base_url, url) == url


@pytest.mark.parametrize("url", ["chat/completions", "/chat/completions", "", "?x=1"])
def test_join_url_relative_url_without_base_url_is_refused(url: str) -> None:
    with pytest.raises(LocalProtocolError, match="needs base_url"):
        join_url(None, url)


@pytest.mark.parametrize("url", ["//evil.example/x", "//", "///x"])
def test_join_url_refuses_network_path_reference(url: str) -> None:
    with pytest.raises(LocalProtocolError, match="must not start with '//'"):
        join_url("http://h/v1", url)


@pytest.mark.parametrize(
    ("base_url", "match"),
    [
        ("http://h/v1?x=1", "no query or fragment"),
        ("http://h/v1?", "no query or fragment"),
        ("http://h/v1#f", "no query or fragment"),
        ("http://h#", "no query or fragment"),
        ("", r"base_url must start with http:// or https:// \(got no scheme\)"),
        ("h/v1", r"base_url must start with http:// or https:// \(got no scheme\)"),
        ("127.0.0.1:8000", r"base_url must start with http:// or https:// \(got no scheme\)"),
        ("socks5://h/", "base_url must start with http:// or https:// \\(got scheme 'socks5'\\)"),
        ("http://user:pw@h/", "credentials"),
        ("http://", "base_url has no host"),
        ("http://h:0/", "port"),
        ("http://h:99999/", "port"),
        ("http://h/ v1", "whitespace"),
        ("http://\u2603.net/", "base_url has an invalid host name"),
    ],
)
def test_check_base_url_refuses(base_url: str, match: str) -> None:
    with pytest.raises(LocalProtocolError, match=match):
        check_base_url(base_url)
    with pytest.raises(LocalProtocolError, match=match):
        join_url(base_url, "x")


@pytest.mark.parametrize("base_url", [b"http://h/", 42])
def test_check_base_url_refuses_non_str(base_url: object) -> None:
    with pytest.raises(LocalProtocolError, match="base_url must be a str"):
        check_base_url(base_url)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="URL must be a str"):
        join_url("http://h/", base_url)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("base_url", "normalised"),
    [
        ("http://h", "http://h/"),
        ("http://h/v1", "http://h/v1/"),
        ("http://h/v1/", "http://h/v1/"),
        ("HTTPS://API.Example.com:443/V1", "https://api.example.com/V1/"),
        ("http://h:8000", "http://h:8000/"),
        ("http://[0:0::1]:8000/api", "http://[::1]:8000/api/"),
        ("http://fa\u00df.de/", "http://xn--fa-hia.de/"),
    ],
)
def test_check_base_url_normalises(base_url: str, normalised: str) -> None:
    assert check_base_url(base_url) == normalised
    assert check_base_url(normalised) == normalised  # idempotent


BASES = st.sampled_from(
    [
        "http://h",
        "http://h/v1",
        "https://api.example.com:8443/v1/",
        "http://127.0.0.1:8000/api",
        "http://[::1]/a/b",
    ]
)


@settings(max_examples=200, deadline=None)
@given(base_url=BASES, url=st.text())
def test_join_url_of_a_relative_url_never_changes_scheme_host_or_port(
    base_url: str, url: str
) -> None:
    assume(not url.startswith("//"))
    assume("://" not in url[:40] or not url.split("://")[0].replace("+", "").isalnum())
    joined = join_url(base_url, url)
    base = parse_url(base_url)
    assert joined == check_base_url(base_url) + url.removeprefix("/")
    try:
        parsed = parse_url(joined)
    except LocalProtocolError:
        return  # e.g. a space in the path: refused, never sent elsewhere
    assert (parsed.scheme, parsed.host, parsed.port) == (base.scheme, base.host, base.port)
    # Appended under the base path, never glued onto its last segment.
    base_path = parse_url(check_base_url(base_url)).target
    assert base_path.endswith("/")
    assert parsed.target.startswith(base_path)


@given(
    base_url=BASES,
    path=st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20),
)
def test_join_url_with_or_without_leading_slash_is_the_same(base_url: str, path: str) -> None:
    assume(not path.startswith("/"))
    assert join_url(base_url, path) == join_url(base_url, "/" + path)


# --- URL.absolute_form ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "absolute_form"),
    [
        ("http://127.0.0.1:8000/api/completions", "http://127.0.0.1:8000/api/completions"),
        ("http://example.com:80/x?y=1#frag", "http://example.com/x?y=1"),
        ("http://EXAMPLE.com", "http://example.com/"),
        ("http://example.com:443/", "http://example.com:443/"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("https://example.com:80/a", "https://example.com:80/a"),
        ("http://[::1]:8000/", "http://[::1]:8000/"),
        ("http://[::1]/", "http://[::1]/"),
        ("http://b\u00fccher.de/\u00e4?q=\u00f6", "http://xn--bcher-kva.de/%C3%A4?q=%C3%B6"),
    ],
)
def test_absolute_form_is_scheme_host_header_and_target(url: str, absolute_form: str) -> None:
    assert parse_url(url).absolute_form == absolute_form


@given(
    scheme=st.sampled_from(["http", "https"]),
    host=st.sampled_from(["example.com", "127.0.0.1", "[::1]", "[2001:db8::7]"]),
    port=st.sampled_from([80, 443]) | st.integers(1, 65535),
    target=st.text(
        alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="#%[]"),
        max_size=20,
    ),
)
def test_absolute_form_parses_back_to_the_same_url(
    scheme: str, host: str, port: int, target: str
) -> None:
    url = parse_url(f"{scheme}://{host}:{port}/{target}")
    assert parse_url(url.absolute_form) == url
    prefix, _, rest = url.absolute_form.partition("://")
    assert prefix == scheme
    assert rest.endswith(url.target)
    netloc = rest[: len(rest) - len(url.target)]
    assert netloc == (host if port == {"http": 80, "https": 443}[scheme] else f"{host}:{port}")
