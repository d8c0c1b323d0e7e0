"""Incremental text decoding of a streamed body (sans-IO)."""

from __future__ import annotations

import codecs
from email.message import Message

__all__ = ["DEFAULT_CHARSET", "TextDecoder", "charset_from_content_type"]

# RFC 8259 makes UTF-8 the JSON default and the Acytoo service sends UTF-8 text.
DEFAULT_CHARSET = "utf-8"


def charset_from_content_type(content_type: str | None) -> str | None:
    """The ``charset`` parameter of a ``Content-Type`` value, or ``None``.

    Quoted values and any letter case are accepted; an unknown charset name
    is returned as is (:class:`TextDecoder` decides what to do with it).
    """
    if not content_type:
        return None
    message = Message()
    message["content-type"] = content_type
    charset = message.get_param("charset")
    if not isinstance(charset, str):
        return None
    return charset.strip() or None


class TextDecoder:
    """Decode a byte stream piece by piece, keeping split multi-byte characters whole.

    An unknown charset falls back to UTF-8 (``encoding`` tells which one is
    used). ``errors`` is a codecs error handler: ``"replace"`` (default),
    ``"strict"`` (raises :class:`UnicodeDecodeError`), ``"ignore"``, ...
    """

    __slots__ = ("_decode", "encoding")

    def __init__(self, charset: str | None = None, errors: str = "replace") -> None:
        try:
            info = codecs.lookup(charset or DEFAULT_CHARSET)
        except LookupError:
            info = codecs.lookup(DEFAULT_CHARSET)
        codecs.lookup_error(errors)  # Fail now on an unknown handler, not mid-stream.
        self.encoding = info.name
        self._decode = info.incrementaldecoder(errors).decode

    def decode(self, data: bytes) -> str:
        """Decode the next piece; bytes of an unfinished character are held back."""
        return self._decode(data)

    def flush(self) -> str:
        """Decode what is held back at the end of the body (a cut character is an error)."""
        return self._decode(b"", True)
