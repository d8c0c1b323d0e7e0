"""The proxy the environment names for a URL: *_PROXY and NO_PROXY, as curl reads them."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from ._urls import URL

__all__ = ["proxy_from_environment"]


def proxy_from_environment(url: URL, environ: Mapping[str, str]) -> str | None:
    """The proxy the environment names for ``url``, or ``None``.

    Reads ``HTTPS_PROXY`` (for https), ``HTTP_PROXY`` (for http) and
    ``ALL_PROXY``, lower-case names first as curl does, and honours
    ``NO_PROXY``: ``*``; host names and domain suffixes (``example.com`` and
    ``.example.com`` both match ``api.example.com``); IP addresses (IPv6 with
    or without brackets), which match only that address; each of these
    optionally with ``:port``; and CIDR networks (``10.0.0.0/8``,
    ``fe80::/10``), which match IP-literal targets inside them. Entries that
    mean nothing are ignored. A value without a scheme is an ``http://``
    proxy. Never raises on any ``NO_PROXY`` text.
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
    target_ip = _ip(host)
    for entry in no_proxy.replace(" ", ",").split(","):
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        if "/" in entry:
            if target_ip is not None and _in_network(target_ip, entry):
                return True
            continue
        entry_host, entry_port = _split_host_port(entry)
        if entry_port is not None and entry_port != url.port:
            continue
        entry_host = entry_host.lstrip(".")
        if target_ip is not None:
            # An address matches only itself: "0.1" is no suffix of 127.0.0.1.
            if _ip(entry_host) == target_ip:
                return True
        elif host == entry_host or host.endswith("." + entry_host):
            return True
    return False


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _in_network(address: ipaddress.IPv4Address | ipaddress.IPv6Address, entry: str) -> bool:
    network, _, prefix = entry.partition("/")
    if network.startswith("[") and network.endswith("]"):
        network = network[1:-1]
    try:  # strict=False: "10.1.2.3/8" means 10.0.0.0/8, as in curl.
        parsed = ipaddress.ip_network(f"{network}/{prefix}", strict=False)
    except ValueError:
        return False  # Not a network: ignored, as curl and httpx do.
    return address in parsed  # False when one is IPv4 and the other IPv6.


def _split_host_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif entry.count(":") == 1:
        host, _, port = entry.partition(":")
    else:
        host, port = entry, ""
    # isascii too: str.isdigit() is true for "²", which int() refuses.
    return host, int(port) if port.isascii() and port.isdigit() else None
