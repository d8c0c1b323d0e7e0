"""The OpenAI chat-completions dialect of the loopback server, sans-IO.

Parses a ``POST /v1/chat/completions`` payload and builds every body the
server sends for the ``/v1`` paths: server-sent events of
``chat.completion.chunk`` objects, one ``chat.completion``, the model list and
errors in OpenAI's ``{"error": {...}}`` shape. The field names follow the
``openai`` SDK's ``ChatCompletionChunk``, ``ChatCompletion``, ``Model`` and
``CompletionUsage`` types. The transport (pacing, HTTP) is in
:mod:`acytoo_raw.server`.

Usage counts are deterministic, not a tokenizer's: ``prompt_tokens`` is the
number of whitespace-separated words over the text of all messages, and
``completion_tokens`` the number of streamed pieces (one content chunk each).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CHAT_PATH",
    "DEFAULT_MODEL",
    "FAULTS",
    "FAULT_HEADER",
    "MODELS",
    "MODELS_PATH",
    "ChatRequest",
    "Frame",
    "RequestError",
    "completion_body",
    "error_body",
    "models_body",
    "parse_chat_request",
    "stream_frames",
]

CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"
# The model named in answers when a request names none; any name is echoed back.
DEFAULT_MODEL = "acytoo-echo"
# What GET /v1/models lists (every other name is accepted too).
MODELS = (DEFAULT_MODEL, "gpt-3.5-turbo")
# The request header that asks for a deterministic failure of a streamed answer.
FAULT_HEADER = "x-acytoo-fault"
# truncate: the first half of the pieces, then a clean HTTP end (no finish_reason, no [DONE]).
# error: the first half, then a data: {"error": ...} event after HTTP 200, then a clean end.
# malformed: the first half, one data: line of cut-off JSON, then the rest and a normal end.
# no-done: the whole answer with its finish_reason chunk, then no [DONE] (a legal end).
FAULTS = frozenset({"truncate", "error", "malformed", "no-done"})

# A fixed date for the model list: the listing is the same on every call.
_MODELS_CREATED = 1_700_000_000
_OWNER = "acytoo_raw"
_DONE = b"data: [DONE]\n\n"


class RequestError(Exception):
    """The payload is unusable: a 400 with ``str(exc)`` and ``param`` (the field at fault)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What the server uses of a chat-completions payload.

    ``messages`` keep only ``role`` and the text of ``content`` (text parts
    joined with newlines), which is what :func:`acytoo_raw.server.reply_pieces`
    echoes.
    """

    model: str
    messages: tuple[Mapping[str, str], ...]
    stream: bool
    include_usage: bool

    def __post_init__(self) -> None:
        if not isinstance(self.model, str):
            raise TypeError(f"model must be a str, got {type(self.model).__name__}")

    @property
    def prompt_tokens(self) -> int:
        """Whitespace-separated words over all message texts (see the module docstring)."""
        return sum(len(message["content"].split()) for message in self.messages)


@dataclass(frozen=True, slots=True)
class Frame:
    """One server-sent event, sent in one write; ``paced`` frames are spaced by the delay."""

    data: bytes
    paced: bool = False


def parse_chat_request(body: bytes | bytearray) -> ChatRequest:
    """Validate a chat-completions payload.

    Raises:
        RequestError: not a JSON object, ``messages`` not a non-empty list of
            objects with a string ``role`` and a string, null or text-part list
            ``content``, or ``model``, ``stream`` or ``stream_options`` of the
            wrong type, or text that is not valid Unicode.
    """
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: "[[[[..." nested deep
        raise RequestError("request body is not valid JSON") from exc
    if not isinstance(payload, dict):
        raise RequestError("request body must be a JSON object")
    model = payload.get("model", DEFAULT_MODEL)
    if not isinstance(model, str) or not model:
        raise RequestError("'model' must be a non-empty string", "model")
    _check_unicode(model, "model")
    messages = payload.get("messages")
    if not isinstance(messages, list):
        raise RequestError("'messages' must be a list", "messages")
    if not messages:
        raise RequestError("'messages' must not be empty", "messages")
    stream = payload.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise RequestError("'stream' must be a boolean", "stream")
    options = payload.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise RequestError("'stream_options' must be an object", "stream_options")
    include_usage = (options or {}).get("include_usage")
    if include_usage is not None and not isinstance(include_usage, bool):
        raise RequestError("'stream_options.include_usage' must be a boolean", "stream_options")
    return ChatRequest(
        model=model,
        messages=tuple(_message(m, i) for i, m in enumerate(messages)),
        stream=bool(stream),
        include_usage=bool(include_usage),
    )


def _message(message: object, index: int) -> Mapping[str, str]:
    param = f"messages[{index}]"
    if not isinstance(message, dict) or not isinstance(message.get("role"), str):
        raise RequestError("each message must be an object with a string 'role'", param)
    content = message.get("content")
    if content is None:  # an assistant turn that only called tools
        text = ""
    elif isinstance(content, str):
        text = content
    elif isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise RequestError("each content part must be an object with a 'type'", param)
            if part["type"] == "text":
                if not isinstance(part.get("text"), str):
                    raise RequestError("a text part needs a string 'text'", param)
                texts.append(part["text"])
        text = "\n".join(texts)
    else:
        raise RequestError("'content' must be a string, a list of parts or null", param)
    _check_unicode(text, param)
    return {"role": message["role"], "content": text}


def _check_unicode(text: str, param: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate from a "\ud800" escape
        raise RequestError("text is not valid Unicode", param) from exc


def _json(obj: object) -> str:
    # Compact, and UTF-8 as is (U+2028 included), as OpenAI sends it.
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _event(obj: object) -> bytes:
    return f"data: {_json(obj)}\n\n".encode()


def _usage(request: ChatRequest, pieces: Sequence[str]) -> dict[str, int]:
    prompt = request.prompt_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": len(pieces),
        "total_tokens": prompt + len(pieces),
    }


def stream_frames(
    request: ChatRequest,
    pieces: Sequence[str],
    *,
    completion_id: str,
    created: int,
    fault: str | None = None,
) -> list[Frame]:
    """The events of a streamed answer, in order, ``data: [DONE]`` included.

    A role chunk (``delta: {"role": "assistant", "content": ""}``), one paced
    content chunk per piece, a chunk with ``finish_reason: "stop"``, a usage
    chunk (``choices: []``) when ``include_usage``, then ``[DONE]``. ``fault``
    (one of :data:`FAULTS`) bends that order as documented there.

    Raises:
        ValueError: an unknown ``fault``.
    """
    if fault is not None and fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}")

    def chunk(delta: dict[str, str], finish_reason: str | None = None) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": request.model,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }
        if request.include_usage:  # OpenAI sends "usage": null on every chunk but the last
            obj["usage"] = None
        return obj

    def content(part: Sequence[str]) -> list[Frame]:
        return [Frame(_event(chunk({"content": piece})), paced=True) for piece in part]

    half = max(1, len(pieces) // 2)
    frames = [Frame(_event(chunk({"role": "assistant", "content": ""})))]
    if fault in ("truncate", "error", "malformed"):
        frames += content(pieces[:half])
        if fault == "truncate":
            return frames
        if fault == "error":
            message = f"the loopback server failed on purpose ({FAULT_HEADER}: error)"
            error = {"message": message, "type": "server_error", "param": None, "code": None}
            return [*frames, Frame(_event({"error": error}))]
        whole = _json(chunk({"content": "".join(pieces[half:])}))
        frames.append(Frame(f"data: {whole[: len(whole) // 2]}\n\n".encode()))
        frames += content(pieces[half:])
    else:
        frames += content(pieces)
    frames.append(Frame(_event(chunk({}, "stop"))))
    if request.include_usage:
        usage = chunk({})
        usage["choices"] = []
        usage["usage"] = _usage(request, pieces)
        frames.append(Frame(_event(usage)))
    if fault != "no-done":
        frames.append(Frame(_DONE))
    return frames


def completion_body(
    request: ChatRequest, pieces: Sequence[str], *, completion_id: str, created: int
) -> bytes:
    """The ``chat.completion`` object of a non-streamed answer, as JSON bytes."""
    message = {"role": "assistant", "content": "".join(pieces), "refusal": None}
    return _json(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": request.model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
            ],
            "usage": _usage(request, pieces),
        }
    ).encode()


def models_body() -> bytes:
    """The ``GET /v1/models`` list, as JSON bytes."""
    data = [
        {"id": name, "object": "model", "created": _MODELS_CREATED, "owned_by": _OWNER}
        for name in MODELS
    ]
    return _json({"object": "list", "data": data}).encode()


def error_body(status: int, message: str, param: str | None = None) -> bytes:
    """An OpenAI error object: ``invalid_request_error`` for 4xx, ``server_error`` beyond."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    error = {"message": message, "type": kind, "param": param, "code": None}
    return _json({"error": error}).encode()
