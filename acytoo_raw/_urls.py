"""Parse target and proxy URLs, join them to a base URL (sans-IO).

Everything here is a pure function of its input: no sockets, no event loop.
Bad input raises :class:`~acytoo_raw.LocalProtocolError` before any
connection is opened.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, quote, unquote, urlsplit

from ._exceptions import LocalProtocolError

__all__ = [
    "URL",
    "ProxyURL",
    "check_base_url",
    "join_url",
    "parse_proxy_url",
    "parse_url",
]

DEFAULT_PORTS = {"http": 80, "https": 443}

# 1080 is the port IANA assigned to SOCKS, and curl's default for socks5://.
PROXY_DEFAULT_PORTS = {**DEFAULT_PORTS, "socks5": 1080, "socks5h": 1080}

# RFC 1929 sends the user name and the password each behind a one-byte length.
MAX_SOCKS_CREDENTIAL_BYTES = 255

_TARGET_SCHEMES_TEXT = "http:// or https://"
_PROXY_SCHEMES_TEXT = "http://, https://, socks5:// or socks5h://"

# Control characters and spaces would let a URL smuggle a second header line
# or request; no valid URL holds them unescaped.
_FORBIDDEN_IN_URL = frozenset(chr(code) for code in [*range(0x21), 0x7F])

# Kept as they are when a target is percent-encoded: RFC 3986 reserved and
# unreserved characters, and "%" so existing escapes survive.
_SAFE_IN_TARGET = "/?#[]@!$&'()*+,;=:-._~%"

# RFC 3986 scheme syntax. Matched with "://" rather than trusting urlsplit,
# which reads "localhost:3128" as scheme "localhost" and path "3128".
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)(:(?://)?)")

# The label separators IDNA accepts besides ".": ideographic, full-width and
# half-width full stops.
_UNICODE_DOTS = re.compile("[\u3002\uff0e\uff61]")


@dataclass(frozen=True, slots=True)
class URL:
    """An ``http``/``https`` origin plus the request target sent on the request line."""

    scheme: str
    host: str
    port: int
    target: str

    def __post_init__(self) -> None:
        if self.scheme not in DEFAULT_PORTS:
            raise LocalProtocolError(f"URL scheme must be 'http' or 'https', not {self.scheme!r}")
        if not self.host:
            raise LocalProtocolError("URL has no host")
        _check_port(self.port, "URL")
        if not self.target.startswith("/"):
            raise LocalProtocolError("URL target must start with '/'")

    @property
    def is_tls(self) -> bool:
        return self.scheme == "https"

    @property
    def host_header(self) -> str:
        """The ``Host`` header: host, IPv6 bracketed, port only when not the default."""
        host = _bracket(self.host)
        if self.port == DEFAULT_PORTS[self.scheme]:
            return host
        return f"{host}:{self.port}"

    @property
    def authority(self) -> str:
        """``host:port`` with IPv6 bracketed: the CONNECT request target."""
        return f"{_bracket(self.host)}:{self.port}"

    @property
    def absolute_form(self) -> str:
        """``scheme://host[:port]/path?query``: the request target for an HTTP proxy.

        RFC 9112 §3.2.2; the port is left out when it is the scheme's default,
        as in the ``Host`` header.
        """
        return f"{self.scheme}://{self.host_header}{self.target}"


@dataclass(frozen=True, slots=True, repr=False)
class ProxyURL:
    """A proxy: ``http``/``https`` (CONNECT or absolute form) or ``socks5``/``socks5h``.

    ``username`` and ``password`` are percent-decoded; they never appear in
    ``repr`` or in an error message. For SOCKS5 a user name is 1 to 255 bytes
    of UTF-8 and a password at most 255 (RFC 1929).
    """

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    def __post_init__(self) -> None:
        if self.scheme not in PROXY_DEFAULT_PORTS:
            raise LocalProtocolError(
                f"unsupported proxy URL scheme {self.scheme!r}: use {_PROXY_SCHEMES_TEXT}"
            )
        if not self.host:
            raise LocalProtocolError("proxy URL has no host")
        _check_port(self.port, "proxy URL")
        if self.is_socks:
            _check_socks_credentials(self.username, self.password)

    @property
    def is_tls(self) -> bool:
        """True for an ``https://`` proxy: TLS to the proxy itself."""
        return self.scheme == "https"

    @property
    def is_socks(self) -> bool:
        """True for ``socks5://`` and ``socks5h://``."""
        return self.scheme in ("socks5", "socks5h")

    @property
    def remote_dns(self) -> bool:
        """True for ``socks5h://``: the proxy resolves the target's name, not us."""
        return self.scheme == "socks5h"

    def authorization(self) -> bytes | None:
        """The ``Proxy-Authorization`` value for Basic auth, or ``None`` without credentials."""
        if self.username is None:
            return None
        userpass = f"{self.username}:{self.password or ''}".encode()
        return b"Basic " + base64.b64encode(userpass)

    def __repr__(self) -> str:
        # Never show the password, not even in a traceback's locals.
        user = f"{self.username}:***@" if self.username is not None else ""
        return f"ProxyURL('{self.scheme}://{user}{_bracket(self.host)}:{self.port}')"


def parse_url(url: str) -> URL:
    """Parse an ``http://`` or ``https://`` URL to request.

    The fragment is dropped (it is never sent); credentials in the URL are
    refused rather than silently ignored. A non-ASCII host is encoded with
    IDNA 2008 (see :func:`_host`).

    Raises:
        LocalProtocolError: not a string, no scheme or an unsupported one, no
            host, an invalid host name, bad port, credentials present, or
            whitespace/control characters.
    """
    return _parse_target(url, "URL")


def check_base_url(base_url: str) -> str:
    """Validate a client's ``base_url`` and return it normalised.

    The result is ``scheme://host[:port]/path/``: scheme and host lower-case,
    the host IDNA-encoded, the default port left out, non-ASCII in the path
    percent-encoded, and the path ending in ``/`` so that :func:`join_url`
    only has to append.

    Raises:
        LocalProtocolError: anything :func:`parse_url` refuses, or a query or
            fragment (a request path cannot be appended after them).
    """
    parsed = _parse_target(base_url, "base_url")
    if "?" in base_url or "#" in base_url:
        raise LocalProtocolError("base_url takes no query or fragment")
    path = parsed.target if parsed.target.endswith("/") else parsed.target + "/"
    return f"{parsed.scheme}://{parsed.host_header}{path}"


def join_url(base_url: str | None, url: str) -> str:
    """The URL a client requests for ``url``, given its ``base_url``.

    A ``url`` that starts with a scheme (``http://``, ``HTTPS://``, ...) is
    returned as it is, whatever ``base_url`` is. Otherwise it is a path
    relative to ``base_url``: the base's path with a ``/`` at its end, then
    ``url`` without its leading ``/``. So with ``base_url="http://h/v1"``,
    both ``"chat/completions"`` and ``"/chat/completions"`` give
    ``"http://h/v1/chat/completions"``. A query string on ``url`` is kept.
    A relative ``url`` can never change the scheme, host or port.

    Raises:
        LocalProtocolError: ``url`` is relative and there is no ``base_url``;
            ``url`` starts with ``//``; ``url`` is not a string; or
            :func:`check_base_url` refuses ``base_url``.
    """
    if not isinstance(url, str):
        raise LocalProtocolError(f"URL must be a str, not {type(url).__name__}")
    match = _SCHEME.match(url)
    if match is not None and match.group(2) == "://":
        return url
    if base_url is None:
        raise LocalProtocolError(
            f"relative URL {url[:100]!r} needs base_url (or start it with {_TARGET_SCHEMES_TEXT})"
        )
    if url.startswith("//"):
        # A network-path reference would name another host; refuse rather
        # than guess whether it meant a host or a path.
        raise LocalProtocolError("a relative URL must not start with '//'")
    return check_base_url(base_url) + url.removeprefix("/")


def parse_proxy_url(url: str) -> ProxyURL:
    """Parse a proxy URL: ``scheme://[user:pass@]host[:port]``.

    ``scheme`` is ``http`` or ``https`` (an HTTP proxy, reached in plain text
    or over TLS), ``socks5`` (SOCKS5; the target's name is resolved here) or
    ``socks5h`` (SOCKS5; the proxy resolves it). The port defaults to 80, 443
    and 1080. Credentials are percent-decoded (a ``#``, ``@`` or ``/`` in a
    password must be written ``%23``, ``%40``, ``%2F``). A path, query or
    fragment is refused, since it would be silently ignored. Error messages
    never repeat the URL, which may hold a password.

    Raises:
        LocalProtocolError: no scheme or an unsupported one, no host, an
            invalid host name, bad port, a path, or SOCKS5 credentials
            RFC 1929 cannot carry.
    """
    scheme = _check_scheme(url, "proxy URL", PROXY_DEFAULT_PORTS)
    parts = _split(url, "proxy URL", secret=True)
    if parts.path not in ("", "/") or parts.query or parts.fragment or "#" in url:
        raise LocalProtocolError(
            "a proxy URL takes no path, query or fragment (percent-encode '#' in a password)"
        )
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return ProxyURL(
        scheme,
        _host(parts, "proxy URL"),
        _port(parts, PROXY_DEFAULT_PORTS[scheme], "proxy URL", secret=True),
        username,
        password,
    )


def _parse_target(url: str, what: str) -> URL:
    scheme = _check_scheme(url, what, DEFAULT_PORTS)
    parts = _split(url, what, secret=False)
    if parts.username is not None or parts.password is not None:
        raise LocalProtocolError(
            "credentials in the URL are not supported; send an Authorization header instead"
        )
    target = parts.path or "/"
    if not target.startswith("/"):
        target = "/" + target
    if parts.query:
        target = f"{target}?{parts.query}"
    if not target.isascii():  # Non-ASCII path or query: send it percent-encoded, as browsers do.
        target = quote(target, safe=_SAFE_IN_TARGET)
    port = _port(parts, DEFAULT_PORTS[scheme], what, secret=False)
    return URL(scheme, _host(parts, what), port, target)


def _check_scheme(url: str, what: str, schemes: Mapping[str, int]) -> str:
    """The URL's scheme, lower-case, once the type, characters and scheme are checked."""
    if not isinstance(url, str):
        raise LocalProtocolError(f"{what} must be a str, not {type(url).__name__}")
    if _FORBIDDEN_IN_URL.intersection(url):
        raise LocalProtocolError(f"{what} contains whitespace or control characters")
    match = _SCHEME.match(url)
    scheme = match.group(1).lower() if match is not None else ""
    if match is not None and match.group(2) == "://":
        if scheme in schemes:
            return scheme
        got = f"scheme {scheme!r}"
    elif scheme in schemes:
        got = f"scheme '{scheme}:' without '//'"
    else:
        # "127.0.0.1:3128", "localhost:3128", "user:pw@host": no scheme. Show
        # nothing of the input, which may hold a password.
        got = "no scheme"
    if schemes is PROXY_DEFAULT_PORTS:
        if got == "no scheme":
            raise LocalProtocolError(f"{what} needs a scheme: {_PROXY_SCHEMES_TEXT} (got {got})")
        raise LocalProtocolError(f"unsupported {what} {got}: use {_PROXY_SCHEMES_TEXT}")
    raise LocalProtocolError(f"{what} must start with {_TARGET_SCHEMES_TEXT} (got {got})")


def _split(url: str, what: str, *, secret: bool) -> SplitResult:
    try:
        return urlsplit(url)
    except ValueError as exc:
        if not secret:
            raise LocalProtocolError(f"invalid {what}: {exc}") from exc
    # Raised outside the handler: urlsplit's message quotes the password.
    raise LocalProtocolError(f"invalid {what}")


def _host(parts: SplitResult, what: str) -> str:
    host = parts.hostname  # Lower-cased by urlsplit.
    if not host:
        raise LocalProtocolError(f"{what} has no host")
    if ":" in host:  # An IPv6 literal: validate it, keep its canonical text.
        try:
            return str(ipaddress.IPv6Address(host))
        except ValueError as exc:
            raise LocalProtocolError(f"{what} has an invalid IPv6 address {host!r}") from exc
    if host.isascii():
        return host
    return _idna_host(host, what)


def _idna_host(host: str, what: str) -> str:
    """IDNA 2008 A-label form of a non-ASCII host, as httpx encodes it.

    Lower-case (done by urlsplit) and NFC (canonical equivalence only), then
    strict IDNA 2008 without the UTS #46 mapping: that mapping would turn
    full-width digits and letters into an ASCII address or name the user
    never typed ("127.0.0.1", "example.com"); strict IDNA 2008 refuses them
    instead. "ß" stays itself ("faß.de" is "xn--fa-hia.de"),
    unlike IDNA 2003's "fass".
    """
    import idna  # Only non-ASCII hosts need its tables: not imported up front.

    host = unicodedata.normalize("NFC", host)
    if all(label.isascii() for label in _UNICODE_DOTS.split(host)):
        # Only the dots were non-ASCII ("127。0。0。1"): encoding would fold
        # them silently into an ASCII address or name.
        raise LocalProtocolError(
            f"{what} has an invalid host name {host!r}: use '.' between its labels"
        )
    try:
        return idna.encode(host).decode("ascii")
    except idna.IDNAError as exc:
        raise LocalProtocolError(f"{what} has an invalid host name {host!r}: {exc}") from exc


def _port(parts: SplitResult, default: int, what: str, *, secret: bool) -> int:
    try:
        port = parts.port
    except ValueError as exc:
        if not secret:
            raise LocalProtocolError(f"{what} has an invalid port: {exc}") from exc
        port = -1
    if port == -1:  # Raised outside the handler: the "port" may be part of a password.
        raise LocalProtocolError(f"{what} has an invalid port")
    if port == 0:
        raise LocalProtocolError(f"{what} has port 0")
    return port if port is not None else default


def _check_port(port: int, what: str) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise LocalProtocolError(f"{what} port must be an int from 1 to 65535")


def _check_socks_credentials(username: str | None, password: str | None) -> None:
    if username is None:
        if password is not None:
            raise LocalProtocolError("a SOCKS5 password needs a user name")
        return
    for name, value in (("user name", username), ("password", password or "")):
        try:
            size = len(value.encode())
        except UnicodeEncodeError:
            size = -1
        if size < 0:  # Raised outside the handler, whose message would quote the value.
            raise LocalProtocolError(f"the SOCKS5 {name} is not valid Unicode text")
        if size > MAX_SOCKS_CREDENTIAL_BYTES:
            raise LocalProtocolError(
                f"the SOCKS5 {name} is longer than {MAX_SOCKS_CREDENTIAL_BYTES} bytes (RFC 1929)"
            )
    if not username:
        raise LocalProtocolError("the SOCKS5 user name is empty (RFC 1929 needs 1 to 255 bytes)")


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host
