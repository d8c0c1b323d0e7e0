"""Shared fixtures: both anyio backends, and a trustme CA for real TLS on loopback."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import pytest
import trustme


@pytest.fixture(
    params=[
        pytest.param("asyncio", id="asyncio"),
        pytest.param("trio", id="trio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> object:
    """Every async test runs on asyncio, trio, and asyncio with uvloop's loop."""
    return request.param


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def tls_server_cert(tls_ca: trustme.CA) -> trustme.LeafCert:
    return tls_ca.issue_cert("127.0.0.1", "localhost", "::1")


@pytest.fixture(scope="session")
def server_ssl_context(tls_server_cert: trustme.LeafCert) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_server_cert.configure_cert(ctx)
    return ctx


@pytest.fixture(scope="session")
def client_ssl_context(tls_ca: trustme.CA) -> ssl.SSLContext:
    """A verifying client context that trusts only the test CA."""
    ctx = ssl.create_default_context()
    tls_ca.configure_trust(ctx)
    return ctx


@pytest.fixture
def ca_file(tls_ca: trustme.CA) -> Iterator[str]:
    with tls_ca.cert_pem.tempfile() as path:
        yield path
