"""The pool against a real uvicorn that closes idle keep-alive connections after 1 s."""

from __future__ import annotations

import ssl

import anyio
import pytest

from acytoo_raw import Client, Timings
from tests.realservers import (
    KEEPALIVE_SECONDS,
    Origin,
    keepalive_origin_fixture,
    keepalive_tls_origin_fixture,
)

__all__ = ["keepalive_origin_fixture", "keepalive_tls_origin_fixture"]

pytestmark = pytest.mark.anyio

BOUND = 10.0


async def client_port(client: Client, method: str = "POST") -> tuple[int, Timings]:
    with anyio.fail_after(BOUND):
        async with client.open_stream("/client", method=method, json={"q": 1}) as response:
            port = int(await response.aread())
            return port, response.timings


async def test_uvicorn_serves_sequential_requests_on_one_connection(
    keepalive_origin: Origin,
) -> None:
    async with Client(base_url=keepalive_origin.base_url) as client:
        ports = [await client_port(client) for _ in range(5)]
    assert len({port for port, _ in ports}) == 1
    assert [timings.reused for _, timings in ports] == [False, True, True, True, True]


async def test_post_after_uvicorn_closed_the_idle_connection_just_works(
    keepalive_origin: Origin,
) -> None:
    # Our expiry is longer than uvicorn's here on purpose: the server closes
    # first, and the request must neither fail nor hang.
    async with Client(base_url=keepalive_origin.base_url) as client:
        first, _ = await client_port(client)
        await anyio.sleep(KEEPALIVE_SECONDS + 0.5)
        second, timings = await client_port(client)
    assert second != first
    assert timings.reused is False


async def test_tls_reuse_then_resumption_after_uvicorn_closed_the_connection(
    keepalive_tls_origin: Origin, client_ssl_context: ssl.SSLContext
) -> None:
    async with Client(base_url=keepalive_tls_origin.base_url, ssl_context=client_ssl_context) as c:
        first, t1 = await client_port(c)
        again, t2 = await client_port(c)
        await anyio.sleep(KEEPALIVE_SECONDS + 0.5)
        later, t3 = await client_port(c)
    assert first == again
    assert t2.reused
    assert later != first
    assert t1.tls_resumed is False
    assert t3.reused is False
    assert t3.tls_resumed is True
