"""Reading one streamed OpenAI-compatible chat completion: chunks, text, finish, usage.

What counts as a complete answer and what is an error is decided here (see
:class:`ChatStream`); the request side lives in :mod:`acytoo_raw.openai`.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing, suppress
from typing import Any, Final, cast

import anyio

from ._exceptions import AcytooError, RemoteProtocolError, StreamError
from ._response import Response, Timings

__all__ = ["DRAIN_AFTER_DONE", "ChatStream", "quote_server_text"]

# Seconds to wait, after [DONE], for the end of the body, so that a Client can
# reuse the connection. The end follows [DONE] in the same write or the next
# packet; a server slower than this costs only the connection's reuse.
DRAIN_AFTER_DONE: Final = 0.5

# How much of a server's text an error message quotes: enough to recognise it.
_QUOTE_LIMIT: Final = 200
_REDACTED: Final = "<api key>"


def quote_server_text(text: str, secret: str | None) -> str:
    """``text`` shortened to :data:`_QUOTE_LIMIT`, with the API key cut out, as a repr."""
    if secret:
        text = text.replace(secret, _REDACTED)
    if len(text) > _QUOTE_LIMIT:
        return repr(text[:_QUOTE_LIMIT]) + "..."
    return repr(text)


def _stream_error(error: object, secret: str | None) -> StreamError:
    """The :class:`StreamError` for an ``error`` a server put in its stream."""
    kind: str | None = None
    code: object = None
    message: object = error
    if isinstance(error, Mapping):
        message = error.get("message")
        kind = error.get("type") if isinstance(error.get("type"), str) else None
        code = error.get("code")
    if isinstance(message, str) and message:
        text = message if not secret else message.replace(secret, _REDACTED)
        if len(text) > 4 * _QUOTE_LIMIT:
            text = text[: 4 * _QUOTE_LIMIT] + "..."
    else:
        shown = quote_server_text(json.dumps(error), secret)
        text = f"the server reported an error in the stream: {shown}"
    return StreamError(text, type=kind, code=code)


class ChatStream:
    """One streamed chat completion, read inside ``async with OpenAIChat.stream(...)``.

    Iterate it (``async for text in chat``) for the answer's text: each
    non-empty ``content`` of choice 0's deltas, as it arrives. Or iterate
    :meth:`chunks` for every parsed chunk object (tool calls, reasoning
    content, logprobs, other choices). A stream is read once, either way.

    While and after it is read:

    - ``finish_reason``: choice 0's (``"stop"``, ``"length"``,
      ``"tool_calls"``, ...), ``None`` until a chunk carries one.
    - ``usage``: the last ``usage`` object the server sent (the token counts
      ``stream_options={"include_usage": True}`` asks for), or ``None``.
    - ``done``: ``data: [DONE]`` was received.
    - ``first_token_time``: seconds from the start of the call to the first
      non-empty content (time to first *token*: the role-only first chunk
      does not count), or ``None``; the same clock as ``timings``.
    - ``timings``: the request's :class:`~acytoo_raw.Timings` (connect, head,
      first body byte, end; ``reused`` with a Client).
    - ``response``: the :class:`~acytoo_raw.Response` (status, headers),
      valid inside the block.
    """

    __slots__ = (
        "_reader",
        "_secret",
        "done",
        "finish_reason",
        "first_token_time",
        "response",
        "usage",
    )

    def __init__(self, response: Response, *, secret: str | None = None) -> None:
        self.response = response
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.done = False
        self.first_token_time: float | None = None
        self._secret = secret
        self._reader: AsyncGenerator[object, None] | None = None

    def __repr__(self) -> str:
        return (
            f"<ChatStream finish_reason={self.finish_reason!r} done={self.done} "
            f"first_token_time={self.first_token_time!r}>"
        )

    @property
    def timings(self) -> Timings:
        return self.response.timings

    def __aiter__(self) -> AsyncGenerator[str, None]:
        """The answer's text pieces (choice 0's non-empty ``delta.content``).

        Raises:
            RemoteProtocolError: the stream ended before ``[DONE]`` without a
                ``finish_reason``, a ``data:`` line is not a JSON object, or a
                chunk's fields have the wrong types; or the body broke.
            StreamError: the server sent an error object in the stream.
            ReadTimeout, TotalTimeout: the server fell silent / time ran out.
            RuntimeError: the stream was already read.
        """
        return cast("AsyncGenerator[str, None]", self._open(texts=True))

    def chunks(self) -> AsyncGenerator[dict[str, Any], None]:
        """Every chunk object as parsed, ``[DONE]`` excluded; errors as iterating the text.

        Events of a type other than ``message`` (the default) are skipped,
        except ``error``.
        """
        return cast("AsyncGenerator[dict[str, Any], None]", self._open(texts=False))

    def _open(self, *, texts: bool) -> AsyncGenerator[object, None]:
        if self._reader is not None:
            raise RuntimeError("a ChatStream can be read only once")
        self._reader = self._read(texts=texts)
        return self._reader

    async def aclose(self) -> None:
        """Close the reader left open by an early ``break`` (the block's end does it too)."""
        reader = self._reader
        if reader is not None:
            with anyio.CancelScope(shield=True):  # Cancellation must not leave it to the GC.
                await reader.aclose()

    async def _read(self, *, texts: bool) -> AsyncGenerator[object, None]:
        # One loop for both forms, so the text form costs no extra generator hop.
        secret = self._secret
        events = self.response.aiter_events()
        async with aclosing(events):
            async for event in events:
                kind = event.event
                if kind != "message":
                    if kind == "error":
                        raise _stream_error(_error_of(event.data), secret)
                    continue
                data = event.data
                if data.strip() == "[DONE]":
                    self.done = True
                    break
                chunk = self._parse(data)
                content = self._take(chunk)
                if not texts:
                    yield chunk
                elif content:
                    yield content
            else:
                if self.finish_reason is None:
                    raise RemoteProtocolError(self._cut_short_message())
                return
            # Read the body's end so a Client can reuse the connection; whatever
            # happens now, the answer is complete.
            with anyio.move_on_after(DRAIN_AFTER_DONE), suppress(AcytooError):
                async for _ in events:
                    pass

    def _parse(self, data: str) -> dict[str, Any]:
        try:
            chunk = json.loads(data)
        except (ValueError, RecursionError) as exc:
            shown = quote_server_text(data, self._secret)
            raise RemoteProtocolError(
                f"a data line of the stream is not valid JSON: {shown}"
            ) from exc
        if not isinstance(chunk, dict):
            shown = quote_server_text(data, self._secret)
            raise RemoteProtocolError(f"a data line of the stream is not a JSON object: {shown}")
        error = chunk.get("error")
        if error is not None:
            raise _stream_error(error, self._secret)
        return chunk

    def _take(self, chunk: dict[str, Any]) -> str:
        """Record the chunk's finish_reason and usage; return choice 0's content."""
        usage = chunk.get("usage")
        if usage is not None:
            if not isinstance(usage, dict):
                raise RemoteProtocolError(f"chunk 'usage' is a {type(usage).__name__}")
            self.usage = usage
        choices = chunk.get("choices")
        if choices is None:
            return ""
        if not isinstance(choices, list):
            raise RemoteProtocolError(f"chunk 'choices' is a {type(choices).__name__}, not a list")
        content = ""
        for choice in choices:
            if not isinstance(choice, dict):
                raise RemoteProtocolError(f"a chunk choice is a {type(choice).__name__}")
            if choice.get("index", 0) != 0:
                continue  # n > 1: the text is choice 0's; chunks() has the others.
            delta = choice.get("delta")
            if delta is not None:
                if not isinstance(delta, dict):
                    raise RemoteProtocolError(f"chunk 'delta' is a {type(delta).__name__}")
                text = delta.get("content")
                if text is not None:
                    if not isinstance(text, str):
                        raise RemoteProtocolError(
                            f"chunk 'delta.content' is a {type(text).__name__}, not a string"
                        )
                    content += text
            reason = choice.get("finish_reason")
            if reason is not None:
                if not isinstance(reason, str):
                    raise RemoteProtocolError(
                        f"chunk 'finish_reason' is a {type(reason).__name__}, not a string"
                    )
                if reason:  # Some servers send "" on every chunk but the last.
                    self.finish_reason = reason
        if content and self.first_token_time is None:
            self.first_token_time = time.perf_counter() - self.response.timings.start
        return content

    def _cut_short_message(self) -> str:
        message = "the stream ended before data: [DONE] and without a finish_reason"
        content_type = self.response.get_header("content-type") or ""
        if not content_type.lower().startswith("text/event-stream"):
            message += f" (the server sent {content_type or 'no content-type'!r}, not SSE)"
        return message + ": the answer may be cut short"


def _error_of(data: str) -> object:
    """The error an ``event: error`` carries: its JSON ``error`` (or object), or its text."""
    try:
        parsed = json.loads(data)
    except (ValueError, RecursionError):
        return data
    if isinstance(parsed, dict) and parsed.get("error") is not None:
        return parsed["error"]
    return parsed
