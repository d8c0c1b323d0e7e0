"""Incremental text decoding of a streamed body (sans-IO)."""

from __future__ import annotations

import codecs

from ._exceptions import LocalProtocolError

__all__ = ["DEFAULT_CHARSET", "TextDecoder", "charset_from_content_type", "check_error_handler"]

# RFC 8259 makes UTF-8 the JSON default and the Acytoo service sends UTF-8 text.
DEFAULT_CHARSET = "utf-8"


def charset_from_content_type(content_type: str | None) -> str | None:
    """The ``charset`` parameter of a ``Content-Type`` value, or ``None``.

    Quoted values and any letter case are accepted; an unknown charset name
    is returned as is (:class:`TextDecoder` decides what to do with it).
    """
    # A hand parser: email.message costs ~50 us per response for the same answer.
    if not content_type:
        return None
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1].replace('\\"', '"').strip()
            return value or None
    return None


def check_error_handler(errors: str) -> None:
    """Refuse an unknown codecs error handler before anything is sent.

    Raises:
        LocalProtocolError: ``errors`` names no registered handler.
    """
    try:
        codecs.lookup_error(errors)
    except (LookupError, TypeError) as exc:
        raise LocalProtocolError(f"unknown encoding_errors handler {errors!r}") from exc


def _text_codec(charset: str | None) -> codecs.CodecInfo:
    # The server names the charset: a bytes-to-bytes codec (base64, zlib,
    # rot13) or an unknown name must not decide what we yield.
    try:
        info = codecs.lookup(charset or DEFAULT_CHARSET)
    except LookupError:
        return codecs.lookup(DEFAULT_CHARSET)
    if not getattr(info, "_is_text_encoding", True):
        return codecs.lookup(DEFAULT_CHARSET)
    return info


class TextDecoder:
    """Decode a byte stream piece by piece, keeping split multi-byte characters whole.

    An unknown charset, or one that names no text encoding (``base64``),
    falls back to UTF-8 (``encoding`` tells which one is used). ``errors``
    is a codecs error handler: ``"replace"`` (default), ``"strict"`` (raises
    :class:`UnicodeDecodeError`), ``"ignore"``, ...
    """

    __slots__ = ("_decode", "encoding")

    def __init__(self, charset: str | None = None, errors: str = "replace") -> None:
        info = _text_codec(charset)
        check_error_handler(errors)
        self.encoding = info.name
        self._decode = info.incrementaldecoder(errors).decode

    def decode(self, data: bytes) -> str:
        """Decode the next piece; bytes of an unfinished character are held back."""
        return self._decode(data)

    def flush(self) -> str:
        """Decode what is held back at the end of the body (a cut character is an error)."""
        return self._decode(b"", True)
