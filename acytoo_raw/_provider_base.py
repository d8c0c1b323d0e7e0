"""The class protocol g4f reads from a provider, shared by every provider here.

A provider is used as a class, never instantiated: g4f (gpt4free) passes the
class itself to ``g4f.ChatCompletion.create(provider=...)``,
``g4f.client.Client(provider=...)`` and ``AsyncClient``, reads class
attributes (``working``, ``needs_auth``, ``supports_stream``, ``live``, ...)
and calls classmethods (``get_dict()``, ``get_parameters()``,
``create_completion``, ``create_async_generator``). :class:`AsyncGeneratorProvider`
carries all of that, duck-typed: nothing here imports g4f. A provider
subclasses it, sets its class attributes and writes only
``create_async_generator`` (its wire format); the blocking and the joined
forms come from here.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import aclosing
from dataclasses import replace
from typing import Any, ClassVar, Final, Generic, TypeVar

from ._exceptions import LocalProtocolError
from ._timeouts import Timeout

__all__ = [
    "REQUEST_PARAMETERS",
    "AsyncGeneratorProvider",
    "Messages",
    "check_client_options",
    "resolve_timeout",
]

# Chat messages as g4f and the OpenAI API pass them: a role and a content
# (a string, or a list of parts for multimodal messages), sometimes more keys.
Messages = list[dict[str, Any]]

# The parameters of ``create_async_generator`` that carry request data, the
# only ones get_parameters() lists: g4f's API server offers those names to its
# remote users, and transport options (proxy, base_url, TLS, client) must stay
# with whoever runs the process (a remote caller choosing them is a
# server-side request forgery).
REQUEST_PARAMETERS: Final = frozenset(
    {
        "model",
        "messages",
        "stream",
        "timeout",
        "api_key",
        "temperature",
        "top_p",
        "max_tokens",
        "stop",
        "seed",
        "n",
        "frequency_penalty",
        "presence_penalty",
        "response_format",
        "tools",
        "tool_choice",
        "stream_options",
        "reasoning_effort",
    }
)

# Example values get_parameters(as_json=True) shows for parameters whose
# default says nothing (None or required), by annotation text.
_EXAMPLE_BY_ANNOTATION: Final[dict[str, object]] = {
    "str": "",
    "str | None": "",
    "int": 0,
    "int | None": 0,
    "float": 0.0,
    "float | None": 0.0,
    "bool": False,
}

_T = TypeVar("_T")


class _ClassProperty(Generic[_T]):
    """A read-only attribute computed from the class it is read on.

    ``@classmethod`` stacked on ``@property`` (what g4f 0.1.8.x used for
    ``params``) stopped working in Python 3.13; a descriptor works everywhere.
    """

    def __init__(self, fget: Callable[[type[Any]], _T]) -> None:
        self._fget = fget
        self.__doc__ = fget.__doc__

    def __get__(self, instance: object, owner: type[Any] | None = None) -> _T:
        return self._fget(type(instance) if owner is None else owner)


def _params(cls: type[AsyncGeneratorProvider]) -> str:
    """``get_params()`` as an attribute, where g4f 0.1.8.x reads it."""
    return cls.get_params()


class AsyncGeneratorProvider:
    """Base of the providers: g4f's class protocol, with blocking and joined forms.

    Class attributes (g4f reads them; a subclass overrides what differs):

    - ``url``: the service's home page; ``get_dict()`` reports it.
    - ``working``: whether the default endpoint answers. g4f refuses a
      provider with ``working = False`` unless called with
      ``ignore_working=True`` (``ChatCompletion``; its ``Client`` does not check).
    - ``needs_auth``: g4f looks up ``<PARENT>_API_KEY`` from the environment
      for a provider that needs it (and g4f 0.1.8.x demands ``auth=``).
    - ``supports_stream``: g4f refuses ``stream=True`` without it.
    - ``supports_message_history``, ``supports_system_message``,
      ``supports_gpt_35_turbo``, ``supports_gpt_4``: capability flags g4f lists.
    - ``use_stream_timeout``: g4f's ``AsyncClient`` wraps each streamed piece
      in ``asyncio.wait_for(stream_timeout)`` when true, ``timeout`` when false.
    - ``live``: a counter g4f raises on each answer and lowers on each failure.
    - ``label``, ``parent``: display and family name; both default to the
      class name (``parent`` names the ``<PARENT>_API_KEY`` variable).
    - ``default_model``, ``models``, ``model_aliases``: what ``get_models()``
      and g4f's retrying providers report and map.
    - ``params``: ``get_params()``, as an attribute (g4f 0.1.8.x).
    """

    url: ClassVar[str] = ""
    label: ClassVar[str] = "AsyncGeneratorProvider"
    parent: ClassVar[str] = "AsyncGeneratorProvider"
    working: ClassVar[bool] = False
    needs_auth: ClassVar[bool] = False
    supports_stream: ClassVar[bool] = True
    supports_message_history: ClassVar[bool] = False
    supports_system_message: ClassVar[bool] = False
    supports_gpt_35_turbo: ClassVar[bool] = False
    supports_gpt_4: ClassVar[bool] = False
    use_stream_timeout: ClassVar[bool] = True
    live: ClassVar[int] = 0
    default_model: ClassVar[str | None] = None
    models: ClassVar[list[str]] = []
    model_aliases: ClassVar[dict[str, str]] = {}
    params = _ClassProperty(_params)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # g4f falls back to the class name for both; an inherited value would
        # make every subclass report its parent's name instead of its own.
        if "label" not in cls.__dict__:
            cls.label = cls.__name__
        if "parent" not in cls.__dict__:
            cls.parent = cls.__name__

    @classmethod
    def get_dict(cls) -> dict[str, str | None]:
        """``{"name", "url", "label"}``, as g4f builds its ``ProviderInfo`` from it."""
        return {"name": cls.__name__, "url": cls.url, "label": cls.label}

    @classmethod
    def get_parent(cls) -> str:
        """The provider family's name (``parent``)."""
        return cls.parent

    @classmethod
    def get_models(cls, **kwargs: Any) -> list[str]:
        """The models this provider offers (``models``, else ``[default_model]``).

        Keyword arguments (g4f passes ``api_key=``) are accepted and unused:
        the list is static, nothing is fetched.
        """
        if cls.models:
            return list(cls.models)
        return [] if cls.default_model is None else [cls.default_model]

    @classmethod
    def get_parameters(cls, as_json: bool = False) -> dict[str, Any]:
        """The request-data parameters of ``create_async_generator``.

        Read from its signature (``inspect.signature``), kept to the names in
        :data:`REQUEST_PARAMETERS`: what g4f shows and forwards. With
        ``as_json=False``, ``{name: inspect.Parameter}``; with ``as_json=True``,
        a JSON-ready example request: each parameter's default (or an example
        value when the default is ``None`` or missing), plus ``provider``,
        ``model`` (the default model) and ``stream``.
        """
        parameters = {
            name: parameter
            for name, parameter in inspect.signature(cls.create_async_generator).parameters.items()
            if name in REQUEST_PARAMETERS
            and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
        }
        if not as_json:
            return parameters
        example: dict[str, Any] = {
            "provider": cls.__name__,
            "model": cls.default_model or "",
            "messages": [{"role": "user", "content": ""}],
            "stream": cls.supports_stream,
        }
        if cls.supports_system_message:
            example["messages"] = [{"role": "system", "content": ""}, *example["messages"]]
        for name, parameter in parameters.items():
            if name in example:
                continue
            default = parameter.default
            if default is not parameter.empty and isinstance(default, (str, int, float, bool)):
                example[name] = default
            else:
                example[name] = _EXAMPLE_BY_ANNOTATION.get(str(parameter.annotation))
        return example

    @classmethod
    def get_params(cls) -> str:
        """``"<Name> supports: (name: type = default, ...)"``, one parameter a line."""
        lines = []
        for name, parameter in cls.get_parameters().items():
            line = f"    {name}"
            if parameter.annotation is not parameter.empty:
                line += f": {parameter.annotation}"
            if name == "model" and cls.default_model is not None:
                line += f" = {cls.default_model!r}"
            elif parameter.default is not parameter.empty:
                line += f" = {parameter.default!r}"
            lines.append(line + ",")
        return f"{cls.__name__} supports: (\n" + "\n".join(lines) + "\n)"

    @classmethod
    def create_async_generator(
        cls, model: str, messages: Messages, **kwargs: Any
    ) -> AsyncGenerator[str, None]:
        """Yield the answer as ``str`` pieces as the server streams them.

        Every subclass writes this (its wire format). Contract: an HTTP error
        status raises :class:`~acytoo_raw.HTTPStatusError` before any piece;
        an error is never yielded as text.
        """
        raise NotImplementedError(f"{cls.__name__} does not implement create_async_generator")

    @classmethod
    async def create_async(cls, model: str, messages: Messages, **kwargs: Any) -> str:
        """The whole answer as one string (arguments as ``create_async_generator``)."""
        pieces = cls.create_async_generator(model, messages, **kwargs)
        async with aclosing(pieces):
            return "".join([piece async for piece in pieces])

    @classmethod
    def create_completion(
        cls, model: str, messages: Messages, stream: bool = True, **kwargs: Any
    ) -> Iterator[str]:
        """A blocking iterator of answer pieces, for code without an event loop.

        The request runs on an event loop in a helper thread, so this also
        works when called from inside a running asyncio or trio loop (it blocks
        that loop while it waits). With ``stream=False`` the whole answer comes
        as one piece. Closing the iterator (or Ctrl-C) closes the socket.
        Other arguments as ``create_async_generator``; nothing is sent before
        the first ``next()``.

        With ``client=``, every such call runs on one shared loop thread, so
        the client's kept-alive connections serve question after question. A
        client given here must then be used only through ``create_completion``
        (a Client belongs to the loop it first ran on); close it with its
        blocking :meth:`~acytoo_raw.Client.close`.
        """
        from ._blocking import iterate_blocking  # Only blocking callers pay for the portal.

        return iterate_blocking(
            cls.create_async_generator(model, messages, **kwargs),
            stream,
            client=kwargs.get("client"),
        )


def check_client_options(client: object, **options: object) -> None:
    """Refuse per-call connection options given together with a client.

    ``options`` maps each option's name to its value; an option is "given"
    when it is not ``None`` and not ``False``. A Client carries its own proxy
    and TLS settings: silently preferring one over the other would send the
    request somewhere the caller did not mean.

    Raises:
        LocalProtocolError: ``client`` is not ``None`` and an option is given.
    """
    if client is None:
        return
    given = sorted(
        name for name, value in options.items() if value is not None and value is not False
    )
    if given:
        raise LocalProtocolError(
            f"{', '.join(given)} cannot be given per call together with client=: "
            "set proxy and TLS options on the Client"
        )


def resolve_timeout(
    timeout: Timeout | float | None, stream_timeout: float | None
) -> Timeout | float | None:
    """Fold g4f's ``stream_timeout`` (longest wait for one piece) into ``timeout``.

    ``stream_timeout`` becomes ``Timeout.read`` (the longest silence between
    two pieces, or before the head); the other limits come from ``timeout``
    as :meth:`Timeout.of` reads it. Without ``stream_timeout``, ``timeout`` is
    returned unchanged.

    Raises:
        TypeError, ValueError: as :class:`Timeout` for a bad value.
    """
    if stream_timeout is None:
        return timeout
    return replace(Timeout.of(timeout), read=stream_timeout)
