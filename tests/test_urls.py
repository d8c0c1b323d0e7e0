"""URL parsing for targets and proxies, and proxy selection from the environment."""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from acytoo_raw._exceptions import AcytooError, LocalProtocolError
from acytoo_raw._urls import URL, ProxyURL, parse_proxy_url, parse_url, proxy_from_environment

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
    "url", ["socks5://proxy.example:1080", "socks4://p:1080", "ftp://p:21", "proxy.example:3128"]
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
