"""The Acytoo provider: the original module's contract, on asyncio and trio."""

from __future__ import annotations

import inspect
import json
import ssl
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any, ClassVar, cast

import anyio
import anyio.lowlevel
import pytest
from anyio.from_thread import start_blocking_portal

from acytoo_raw import (
    Acytoo,
    Client,
    ConnectError,
    HTTPStatusError,
    LocalProtocolError,
    ReadTimeout,
    Timeout,
)
from acytoo_raw._provider_base import (
    REQUEST_PARAMETERS,
    AsyncGeneratorProvider,
    Messages,
    check_client_options,
    resolve_timeout,
)
from acytoo_raw.provider import _create_header, _create_payload
from tests.peers import chunk, chunked_head, response, script, scripted_server
from tests.threaded import threaded_server

HELLO = [{"role": "user", "content": "Hello there, 世界 🌍"}]
BOUND = 10.0


def test_class_attributes_match_the_original() -> None:
    assert Acytoo.url == "https://chat.acytoo.com"
    assert Acytoo.working is False
    assert Acytoo.supports_message_history is True
    assert Acytoo.supports_gpt_35_turbo is True
    assert Acytoo.supports_stream is True


def test_class_attributes_g4f_reads() -> None:
    # g4f 8.x (registry, ChatCompletion, Client, AsyncClient) and 0.1.8.x read these.
    assert Acytoo.__name__ == "Acytoo"
    assert Acytoo.needs_auth is False
    assert Acytoo.supports_gpt_4 is False
    assert Acytoo.supports_system_message is False
    assert Acytoo.use_stream_timeout is True
    assert Acytoo.live == 0
    assert Acytoo.label == "Acytoo"
    assert Acytoo.parent == "Acytoo"
    assert Acytoo.default_model == "gpt-3.5-turbo"
    assert Acytoo.models == ["gpt-3.5-turbo"]
    assert Acytoo.model_aliases == {}
    assert issubclass(Acytoo, AsyncGeneratorProvider)


def test_classmethods_g4f_calls() -> None:
    assert Acytoo.get_dict() == {
        "name": "Acytoo",
        "url": "https://chat.acytoo.com",
        "label": "Acytoo",
    }
    assert Acytoo.get_parent() == "Acytoo"
    assert Acytoo.get_models() == ["gpt-3.5-turbo"]
    assert Acytoo.get_models(api_key="ignored") == ["gpt-3.5-turbo"]
    # A copy: g4f code that appends to what it got must not change the class.
    Acytoo.get_models().append("x")
    assert Acytoo.models == ["gpt-3.5-turbo"]


def test_get_parameters_lists_the_request_data_parameters_of_the_generator() -> None:
    parameters = Acytoo.get_parameters()
    assert list(parameters) == ["model", "messages", "temperature", "timeout"]
    assert all(isinstance(value, inspect.Parameter) for value in parameters.values())
    assert parameters["temperature"].default == 0.5
    signature = inspect.signature(Acytoo.create_async_generator).parameters
    # Transport options stay out (a remote g4f API user must not choose them).
    for name in ("proxy", "base_url", "ssl_context", "cafile", "client", "trust_env"):
        assert name in signature
        assert name not in parameters
    assert set(parameters) <= REQUEST_PARAMETERS


def test_get_parameters_as_json_is_an_example_request() -> None:
    example = Acytoo.get_parameters(as_json=True)
    assert json.loads(json.dumps(example)) == example
    assert example == {
        "provider": "Acytoo",
        "model": "gpt-3.5-turbo",
        "messages": [{"role": "user", "content": ""}],
        "stream": True,
        "temperature": 0.5,
        "timeout": None,
    }


def test_params_is_a_class_attribute_describing_the_parameters() -> None:
    # g4f 0.1.8.x reads `provider.params` (a class property there); 8.x calls get_params().
    assert isinstance(Acytoo.params, str)
    assert Acytoo.params == Acytoo.get_params()
    assert Acytoo.params.startswith("Acytoo supports: (\n")
    assert "    temperature: float = 0.5," in Acytoo.params
    assert "    model: str = 'gpt-3.5-turbo'," in Acytoo.params
    assert "proxy" not in Acytoo.params


class _Echo(AsyncGeneratorProvider):
    """A provider with only a generator: everything else comes from the base."""

    url = "http://echo.invalid"
    supports_system_message = True
    models: ClassVar[list[str]] = []

    @classmethod
    async def create_async_generator(
        cls, model: str, messages: Messages, *, top_p: float = 1.0, **kwargs: Any
    ) -> AsyncGenerator[str, None]:
        for word in str(messages[-1]["content"]).split():
            yield word
            await anyio.lowlevel.checkpoint()


class _Child(_Echo):
    label = "A child"


def test_a_subclass_gets_its_own_name_as_label_and_parent() -> None:
    assert _Echo.label == "_Echo"
    assert _Echo.parent == "_Echo"
    assert _Child.label == "A child"
    assert _Child.parent == "_Child"
    assert _Echo.get_dict() == {"name": "_Echo", "url": "http://echo.invalid", "label": "_Echo"}


def test_base_defaults_are_g4fs() -> None:
    assert _Echo.working is False
    assert _Echo.needs_auth is False
    assert _Echo.supports_stream is True
    assert _Echo.supports_message_history is False
    assert _Echo.supports_gpt_4 is False
    assert _Echo.use_stream_timeout is True
    assert _Echo.get_models() == []
    example = _Echo.get_parameters(as_json=True)
    assert example["top_p"] == 1.0
    assert example["model"] == ""
    assert example["messages"][0]["role"] == "system"


def test_a_provider_without_a_generator_says_so() -> None:
    class Bare(AsyncGeneratorProvider):
        pass

    with pytest.raises(NotImplementedError, match="Bare"):
        Bare.create_async_generator("m", HELLO)


def test_the_base_gives_the_blocking_and_joined_forms() -> None:
    messages = [{"role": "user", "content": "one two three"}]
    assert list(_Echo.create_completion("m", messages)) == ["one", "two", "three"]
    assert list(_Echo.create_completion("m", messages, stream=False)) == ["onetwothree"]
    assert anyio.run(_Echo.create_async, "m", messages) == "onetwothree"


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


class _FakeClient:
    """Stands in for acytoo_raw.Client: records each stream_text call, answers two pieces."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def stream_text(
        self,
        url: str,
        *,
        method: str = "POST",
        json: object = None,
        headers: dict[str, str] | None = None,
        timeout: Timeout | float | None = None,
    ) -> AsyncGenerator[str, None]:
        self.calls.append(
            {"url": url, "method": method, "json": json, "headers": headers, "timeout": timeout}
        )
        yield "from "
        yield "client"


def _as_client(fake: _FakeClient) -> Client:
    return cast(Client, fake)


@pytest.mark.anyio
async def test_a_client_carries_the_request() -> None:
    fake = _FakeClient()
    with anyio.fail_after(BOUND):
        answer = await Acytoo.create_async(
            "m",
            HELLO,
            base_url="http://127.0.0.1:9/x",
            client=_as_client(fake),
            temperature=0.3,
            timeout=5,
        )
    assert answer == "from client"
    assert fake.calls == [
        {
            "url": "http://127.0.0.1:9/x/api/completions",
            "method": "POST",
            "json": {**_create_payload(HELLO), "temperature": 0.3},
            "headers": _create_header(),
            "timeout": 5,
        }
    ]


@pytest.mark.anyio
async def test_without_base_url_the_path_is_relative_to_the_clients() -> None:
    fake = _FakeClient()
    with anyio.fail_after(BOUND):
        await Acytoo.create_async("m", HELLO, client=_as_client(fake))
    assert fake.calls[0]["url"] == "api/completions"


@pytest.mark.anyio
async def test_a_real_client_carries_the_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from acytoo_raw import provider
    from acytoo_raw.server import serve

    def no_one_shot(*args: object, **kwargs: object) -> None:
        raise AssertionError("the module stream_text was used instead of the client")

    monkeypatch.setattr(provider, "stream_text", no_one_shot)
    async with serve(delay=0.002) as base:
        with anyio.fail_after(BOUND):
            async with Client(base_url=base + "/") as client:
                pieces = [
                    piece
                    async for piece in Acytoo.create_async_generator("m", HELLO, client=client)
                ]
                again = await Acytoo.create_async("m", HELLO, client=client, base_url=base)
    assert "".join(pieces) == HELLO[0]["content"]
    assert len(pieces) > 1
    assert again == HELLO[0]["content"]


@pytest.mark.anyio
async def test_a_real_client_raises_http_errors() -> None:
    reply = response(b'{"msg": "bad key"}', status=b"401 Unauthorized")
    async with scripted_server(script(reply)) as (base, _), Client(base_url=base) as client:
        with pytest.raises(HTTPStatusError) as caught, anyio.fail_after(BOUND):
            await Acytoo.create_async("m", HELLO, client=client)
    assert caught.value.status_code == 401


@pytest.mark.anyio
@pytest.mark.parametrize(
    "option",
    [
        {"proxy": "http://127.0.0.1:3128"},
        {"proxy_ssl_context": ssl.create_default_context()},
        {"ssl_context": ssl.create_default_context()},
        {"cafile": "/no/such/ca.pem"},
        {"trust_env": True},
    ],
    ids=lambda option: next(iter(option)),
)
async def test_connection_options_beside_a_client_are_refused(option: dict[str, Any]) -> None:
    fake = _FakeClient()
    with pytest.raises(LocalProtocolError, match=next(iter(option))), anyio.fail_after(BOUND):
        await Acytoo.create_async("m", HELLO, client=_as_client(fake), **option)
    assert fake.calls == []


def test_create_completion_with_a_client_reuses_one_connection() -> None:
    # Blocking calls with a client share one loop thread, so its pool lives on.
    client = Client()
    with threaded_server() as base:
        for _ in range(3):
            pieces = list(Acytoo.create_completion("m", HELLO, base_url=base, client=client))
            assert "".join(pieces) == HELLO[-1]["content"]
        assert client._pool.open_connections == 1
        assert client._pool.idle_connections == 1
        client.close()
        assert client._pool.open_connections == 0


def test_interrupting_create_completion_with_a_client_frees_the_connection() -> None:
    client = Client()
    with threaded_server(delay=0.05) as base:
        iterator = Acytoo.create_completion("m", HELLO, base_url=base, client=client)
        next(iterator)
        iterator.close()  # A half-read answer: its connection must close, not go idle.
        assert client._pool.open_connections == 0
        assert "".join(Acytoo.create_completion("m", HELLO, base_url=base, client=client))
        client.close()


def test_blocking_close_is_refused_for_a_client_of_an_event_loop() -> None:
    with pytest.raises(LocalProtocolError, match="aclose"):
        Client().close()


def test_check_client_options() -> None:
    check_client_options(None, proxy="http://p:1", trust_env=True)
    check_client_options(_as_client(_FakeClient()), proxy=None, trust_env=False, cafile=None)
    with pytest.raises(LocalProtocolError, match="cafile, proxy cannot be given"):
        check_client_options(_as_client(_FakeClient()), proxy="http://p:1", cafile="ca.pem")


def test_resolve_timeout_makes_stream_timeout_the_read_limit() -> None:
    assert resolve_timeout(None, None) is None
    assert resolve_timeout(7, None) == 7
    assert resolve_timeout(None, 3) == Timeout(read=3)
    assert resolve_timeout(7, 3) == Timeout(connect=7, read=3, write=7, total=None, pool=7)
    assert resolve_timeout(Timeout(total=30), 2.5) == Timeout(total=30, read=2.5)
    with pytest.raises(ValueError, match="read"):
        resolve_timeout(None, -1)


async def _collect(agen: AsyncGenerator[str, None], pieces: list[str]) -> None:
    async with aclosing(agen):
        async for piece in agen:
            pieces.append(piece)


@pytest.mark.anyio
async def test_stream_timeout_limits_the_wait_for_a_piece() -> None:
    stall = script(chunked_head(), chunk(b"first"), hang=True)
    async with scripted_server(stall) as (base, _):
        pieces: list[str] = []
        agen = Acytoo.create_async_generator("m", HELLO, base_url=base, stream_timeout=0.2)
        with pytest.raises(ReadTimeout), anyio.fail_after(BOUND):
            await _collect(agen, pieces)
    assert pieces == ["first"]


@pytest.mark.anyio
@pytest.mark.parametrize("base_url", ["", "chat.example", "http://h/?q=1"])
async def test_a_bad_base_url_is_refused_not_replaced(base_url: str) -> None:
    with pytest.raises(LocalProtocolError, match="base_url"), anyio.fail_after(BOUND):
        await Acytoo.create_async("m", HELLO, base_url=base_url)


@pytest.mark.anyio
async def test_media_is_refused_before_sending() -> None:
    async with scripted_server(script(response(b"ok"))) as (base, log):
        with pytest.raises(LocalProtocolError, match="text only"), anyio.fail_after(BOUND):
            await Acytoo.create_async("m", HELLO, base_url=base, media=[(b"png", "a.png")])
    assert log.connections == 0


def test_create_completion_takes_g4fs_keyword_call() -> None:
    # How g4f 8.x's Client calls it: everything by keyword, plus arguments we ignore.
    with threaded_server() as base:
        pieces = list(
            Acytoo.create_completion(
                model="gpt-3.5-turbo",
                messages=HELLO,
                provider=Acytoo,
                stream=False,
                base_url=base,
                api_key="sk-ignored",
                timeout=10,
                stream_timeout=10,
                max_tokens=5,
                stop=["x"],
                conversation=None,
                ignore_stream=True,
            )
        )
    assert pieces == [HELLO[0]["content"]]


def test_create_completion_raises_http_errors_instead_of_yielding_them() -> None:
    reply = response(b'{"msg": "down"}', status=b"503 Service Unavailable")
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(scripted_server(script(reply))) as (base, _),
    ):
        pieces: list[str] = []
        with pytest.raises(HTTPStatusError) as caught:
            pieces.extend(Acytoo.create_completion("m", HELLO, base_url=base))
    assert pieces == []
    assert caught.value.status_code == 503
