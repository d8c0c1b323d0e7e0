"""A squid with Debian's stock access rules, as users have it (issue 9).

Stock squid refuses CONNECT to any port but 443 (``http_access deny CONNECT
!SSL_ports``) and forwards plain-HTTP requests in absolute form. So plain
``http://`` origins must go in absolute form, ``https://`` ones through CONNECT.
"""

from __future__ import annotations

import json
import ssl
from contextlib import aclosing
from typing import Any

import anyio
import pytest

import acytoo_raw
from acytoo_raw import Client, ProxyError
from tests.realservers import (
    Origin,
    ProxyServer,
    plain_origin_fixture,
    stock_squid_fixture,
    tls_origin_443_fixture,
    tls_origin_fixture,
)
from tests.stream_app import expected_text

__all__ = [
    "plain_origin_fixture",
    "stock_squid_fixture",
    "tls_origin_443_fixture",
    "tls_origin_fixture",
]

pytestmark = pytest.mark.anyio

BOUND = 20.0


async def collect_text(url: str, **kwargs: Any) -> str:
    with anyio.fail_after(BOUND):
        async with aclosing(acytoo_raw.stream_text(url, **kwargs)) as pieces:
            return "".join([piece async for piece in pieces])


async def test_plain_http_origin_through_stock_squid(
    stock_squid: ProxyServer, plain_origin: Origin
) -> None:
    text = await collect_text(plain_origin.url("/api/completions"), proxy=stock_squid.url("open"))
    assert text == expected_text()


async def test_stock_squid_strips_proxy_credentials_before_the_origin(
    stock_squid: ProxyServer, plain_origin: Origin
) -> None:
    proxy = f"http://someone:s3cret@127.0.0.1:{stock_squid.open_port}"
    body = await collect_text(plain_origin.url("/headers"), proxy=proxy)
    seen = json.loads(body)
    names = [name.lower() for name, _ in seen["headers"]]
    assert "proxy-authorization" not in names
    assert seen["path"] == "/headers"


async def test_https_origin_on_443_through_stock_squid(
    stock_squid: ProxyServer, tls_origin_443: Origin, client_ssl_context: ssl.SSLContext
) -> None:
    text = await collect_text(
        tls_origin_443.url("/api/completions"),
        proxy=stock_squid.url("open"),
        ssl_context=client_ssl_context,
    )
    assert text == expected_text()


async def test_pooled_through_stock_squid_per_proxy_and_target(
    stock_squid: ProxyServer,
    plain_origin: Origin,
    tls_origin_443: Origin,
    client_ssl_context: ssl.SSLContext,
) -> None:
    async with Client(proxy=stock_squid.url("open"), ssl_context=client_ssl_context) as client:
        for _ in range(2):
            for origin in (plain_origin, tls_origin_443):
                with anyio.fail_after(BOUND):
                    async with client.open_stream(origin.url("/api/completions")) as r:
                        assert (await r.aread()).decode() == expected_text()
        # One kept-alive connection per (proxy, target).
        assert client._pool.idle_connections == 2


async def test_stock_squid_refuses_connect_to_other_ports(
    stock_squid: ProxyServer, tls_origin: Origin, client_ssl_context: ssl.SSLContext
) -> None:
    with pytest.raises(ProxyError) as caught:
        await collect_text(
            tls_origin.url("/api/completions"),
            proxy=stock_squid.url("open"),
            ssl_context=client_ssl_context,
        )
    assert caught.value.status_code == 403
