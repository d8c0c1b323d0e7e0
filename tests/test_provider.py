"""The Acytoo provider: the original module's contract, on asyncio and trio."""

from __future__ import annotations

import json
from contextlib import aclosing

import anyio
import pytest

from acytoo_raw import Acytoo, ConnectError, HTTPStatusError
from acytoo_raw.provider import _create_header, _create_payload
from tests.peers import response, script, scripted_server
from tests.threaded import threaded_server

HELLO = [{"role": "user", "content": "Hello there, 世界 🌍"}]
BOUND = 10.0


def test_class_attributes_match_the_original() -> None:
    assert Acytoo.url == "https://chat.acytoo.com"
    assert Acytoo.working is False
    assert Acytoo.supports_message_history is True
    assert Acytoo.supports_gpt_35_turbo is True
    assert Acytoo.supports_stream is True


def test_header_and_payload_are_exactly_the_originals() -> None:
    assert _create_header() == {"accept": "*/*", "content-type": "application/json"}
    assert _create_payload(HELLO) == {
        "key": "",
        "model": "gpt-3.5-turbo",
        "messages": HELLO,
        "temperature": 0.5,
        "password": "",
    }
    assert _create_payload(HELLO, temperature=0.9, stream=True)["temperature"] == 0.9


@pytest.mark.anyio
async def test_the_seeds_call_works_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    from acytoo_raw.server import serve

    async with serve(delay=0.005) as base:
        monkeypatch.setattr(Acytoo, "url", base)
        with anyio.fail_after(BOUND):
            pieces = [
                piece
                async for piece in Acytoo.create_async_generator("gpt-3.5-turbo", HELLO, proxy=None)
            ]
    assert "".join(pieces) == HELLO[0]["content"]
    assert len(pieces) > 1


@pytest.mark.anyio
async def test_sends_the_payload_with_temperature_and_ignores_unknown_kwargs() -> None:
    async with scripted_server(script(response(b"ok"))) as (base, log):
        with anyio.fail_after(BOUND):
            answer = await Acytoo.create_async(
                "gpt-4", HELLO, base_url=base + "/prefix/", temperature=0.2, stream=True, foo=1
            )
    assert answer == "ok"
    head, _, body = log.requests[0].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /prefix/api/completions HTTP/1.1\r\n")
    assert b"accept: */*" in head
    assert json.loads(body) == {**_create_payload(HELLO), "temperature": 0.2}


@pytest.mark.anyio
async def test_non_2xx_raises_http_status_error() -> None:
    reply = response(b'{"msg": "bad key"}', status=b"401 Unauthorized")
    async with scripted_server(script(reply)) as (base, _):
        with pytest.raises(HTTPStatusError) as caught, anyio.fail_after(BOUND):
            await Acytoo.create_async("gpt-3.5-turbo", HELLO, base_url=base)
    assert caught.value.status_code == 401
    assert caught.value.body == b'{"msg": "bad key"}'


@pytest.mark.anyio
async def test_cafile_is_trusted_for_tls(server_ssl_context: object, ca_file: str) -> None:
    import ssl

    from acytoo_raw.server import serve

    assert isinstance(server_ssl_context, ssl.SSLContext)
    async with serve(ssl_context=server_ssl_context) as base:
        with anyio.fail_after(BOUND):
            answer = await Acytoo.create_async("m", HELLO, base_url=base, cafile=ca_file)
    assert answer == HELLO[0]["content"]


def test_create_completion_streams_from_plain_code() -> None:
    with threaded_server(delay=0.005) as base:
        pieces = list(Acytoo.create_completion("gpt-3.5-turbo", HELLO, base_url=base))
    assert "".join(pieces) == HELLO[0]["content"]
    assert len(pieces) > 1


def test_create_completion_without_stream_gives_one_piece() -> None:
    with threaded_server() as base:
        pieces = list(Acytoo.create_completion("m", HELLO, stream=False, base_url=base))
    assert pieces == [HELLO[0]["content"]]


@pytest.mark.anyio
async def test_create_completion_works_inside_a_running_loop() -> None:
    with threaded_server() as base:
        # Blocking call from inside asyncio/trio: no "event loop is already running".
        pieces = list(Acytoo.create_completion("m", HELLO, base_url=base))
    assert "".join(pieces) == HELLO[0]["content"]


def test_closing_create_completion_early_releases_everything() -> None:
    with threaded_server(delay=0.01) as base:
        iterator = Acytoo.create_completion("m", HELLO, base_url=base)
        first = next(iterator)
        iterator.close()  # type: ignore[attr-defined]
    assert first == "Hello "


def test_create_completion_raises_typed_errors() -> None:
    with pytest.raises(ConnectError):
        list(Acytoo.create_completion("m", HELLO, base_url="http://127.0.0.1:1"))


@pytest.mark.anyio
async def test_breaking_out_of_the_provider_closes_the_stream() -> None:
    from acytoo_raw.server import serve

    async with serve(delay=0.01) as base:
        with anyio.fail_after(BOUND):
            pieces = Acytoo.create_async_generator("m", HELLO, base_url=base)
            async with aclosing(pieces):
                async for piece in pieces:
                    assert piece == "Hello "
                    break
