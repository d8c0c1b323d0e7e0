"""Parse target and proxy URLs (sans-IO).

Everything here is a pure function of its input: no sockets, no event loop.
Bad input raises :class:`~acytoo_raw.LocalProtocolError` before any
connection is opened.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, quote, unquote, urlsplit

from ._exceptions import LocalProtocolError

__all__ = ["URL", "ProxyURL", "parse_proxy_url", "parse_url", "proxy_from_environment"]

DEFAULT_PORTS = {"http": 80, "https": 443}

# Control characters and spaces would let a URL smuggle a second header line
# or request; no valid URL holds them unescaped.
_FORBIDDEN_IN_URL = frozenset(chr(code) for code in [*range(0x21), 0x7F])

# Kept as they are when a target is percent-encoded: RFC 3986 reserved and
# unreserved characters, and "%" so existing escapes survive.
_SAFE_IN_TARGET = "/?#[]@!$&'()*+,;=:-._~%"


@dataclass(frozen=True, slots=True)
class URL:
    """An ``http``/``https`` origin plus the request target sent on the request line."""

    scheme: str
    host: str
    port: int
    target: str

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


@dataclass(frozen=True, slots=True, repr=False)
class ProxyURL:
    """An ``http``/``https`` CONNECT proxy with optional Basic credentials."""

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @property
    def is_tls(self) -> bool:
        return self.scheme == "https"

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
    refused rather than silently ignored.

    Raises:
        LocalProtocolError: not a string, unsupported scheme, no host, bad port,
            credentials present, or whitespace/control characters.
    """
    parts = _split(url, "URL", secret=False)
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
    scheme = parts.scheme.lower()
    return URL(scheme, _host(parts, "URL"), _port(parts, scheme, "URL", secret=False), target)


def parse_proxy_url(url: str) -> ProxyURL:
    """Parse a proxy URL: ``http://[user:pass@]host:port`` or ``https://...``.

    Credentials are percent-decoded (a ``#``, ``@`` or ``/`` in a password
    must be written ``%23``, ``%40``, ``%2F``). A path, query or fragment is
    refused, since it would be silently ignored. Error messages never repeat
    the URL, which may hold a password.

    Raises:
        LocalProtocolError: unsupported scheme, no host, bad port, or a path.
    """
    parts = _split(url, "proxy URL", secret=True)
    if parts.path not in ("", "/") or parts.query or parts.fragment or "#" in url:
        raise LocalProtocolError(
            "a proxy URL takes no path, query or fragment (percent-encode '#' in a password)"
        )
    scheme = parts.scheme.lower()
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return ProxyURL(
        scheme,
        _host(parts, "proxy URL"),
        _port(parts, scheme, "proxy URL", secret=True),
        username,
        password,
    )


def proxy_from_environment(url: URL, environ: Mapping[str, str]) -> str | None:
    """The proxy the environment names for ``url``, or ``None``.

    Reads ``HTTPS_PROXY`` (for https), ``HTTP_PROXY`` (for http) and
    ``ALL_PROXY``, lower-case names first as curl does, and honours
    ``NO_PROXY``: ``*``, host names, domain suffixes (``example.com`` and
    ``.example.com`` both match ``api.example.com``), IP literals, each
    optionally with ``:port``. A value without a scheme is an ``http://`` proxy.
    """
    if _bypasses_proxy(url, _env(environ, "no_proxy")):
        return None
    proxy = _env(environ, f"{url.scheme}_proxy") or _env(environ, "all_proxy")
    if proxy is not None and "://" not in proxy:
        proxy = "http://" + proxy  # "host:port" means an http proxy, as in curl.
    return proxy


def _env(environ: Mapping[str, str], name: str) -> str | None:
    for key in (name, name.upper()):  # Blank values count as unset, as in curl.
        value = environ.get(key, "").strip()
        if value:
            return value
    return None


def _bypasses_proxy(url: URL, no_proxy: str | None) -> bool:
    if not no_proxy:
        return False
    host = url.host.lower()
    for entry in no_proxy.replace(" ", ",").split(","):
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        entry_host, entry_port = _split_host_port(entry)
        if entry_port is not None and entry_port != url.port:
            continue
        entry_host = entry_host.lstrip(".")
        if host == entry_host or host.endswith("." + entry_host):
            return True
    return False


def _split_host_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif entry.count(":") == 1:
        host, _, port = entry.partition(":")
    else:
        host, port = entry, ""
    return host, int(port) if port.isdigit() else None


def _split(url: str, what: str, *, secret: bool) -> SplitResult:
    if not isinstance(url, str):
        raise LocalProtocolError(f"{what} must be a str, not {type(url).__name__}")
    if _FORBIDDEN_IN_URL.intersection(url):
        raise LocalProtocolError(f"{what} contains whitespace or control characters")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        if not secret:
            raise LocalProtocolError(f"invalid {what}: {exc}") from exc
        parts = None
    if parts is None:  # Raised outside the handler: urlsplit's message quotes the password.
        raise LocalProtocolError(f"invalid {what}")
    if parts.scheme.lower() not in DEFAULT_PORTS:
        shown = parts.scheme or "none"
        raise LocalProtocolError(f"unsupported {what} scheme {shown!r}: use http:// or https://")
    return parts


def _host(parts: SplitResult, what: str) -> str:
    host = parts.hostname
    if not host:
        raise LocalProtocolError(f"{what} has no host")
    if ":" in host:  # An IPv6 literal: validate it, keep its canonical text.
        try:
            return str(ipaddress.IPv6Address(host))
        except ValueError as exc:
            raise LocalProtocolError(f"{what} has an invalid IPv6 address {host!r}") from exc
    if not host.isascii():
        try:
            return host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise LocalProtocolError(f"{what} has an invalid host name {host!r}") from exc
    return host


def _port(parts: SplitResult, scheme: str, what: str, *, secret: bool) -> int:
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
    return port if port is not None else DEFAULT_PORTS[scheme]


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host
