"""Whatever a server sends, the client ends in a result or a typed error, never a hang."""

from __future__ import annotations

from contextlib import aclosing
from itertools import pairwise

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import acytoo_raw
from acytoo_raw import AcytooError, Timeout
from tests.peers import script, scripted_server

pytestmark = pytest.mark.anyio

PLAUSIBLE_HEADS = [
    b"",
    b"HTTP/1.1 200 OK\r\n",
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n",
    b"HTTP/1.0 200 OK\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n",
    b"HTTP/1.1 404 Not Found\r\ncontent-length: 3\r\n\r\n",
]

responses = st.builds(bytes.__add__, st.sampled_from(PLAUSIBLE_HEADS), st.binary(max_size=400))


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in pairwise(edges) if data[a:b]]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=responses, cuts=st.lists(st.integers(min_value=0), max_size=6), hang=st.booleans())
async def test_any_server_bytes_end_in_a_result_or_a_typed_error(
    data: bytes, cuts: list[int], hang: bool
) -> None:
    steps: list[bytes | float] = []
    for piece in split(data, cuts):
        steps += [piece, 0.001]
    async with scripted_server(script(*steps, hang=hang)) as (base, _):
        with anyio.fail_after(5):  # The read timeout must fire long before this.
            try:
                async with aclosing(
                    acytoo_raw.stream_text(base, timeout=Timeout(read=0.2))
                ) as pieces:
                    async for piece in pieces:
                        assert isinstance(piece, str)
                        assert piece
            except AcytooError:
                pass
