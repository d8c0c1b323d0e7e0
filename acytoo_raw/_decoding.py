"""Incremental text decoding of a streamed body (sans-IO).

Which charsets are decoded
--------------------------
The server names the charset, so the name is untrusted input: it must never
make decoding raise anything but :class:`UnicodeDecodeError` (and that only
with ``errors="strict"``), nor make the text depend on how the body was split
into reads. A charset is used only when it names one of Python's own text
encodings whose incremental decoder keeps no state but an unfinished
character and lets the error handler decide every bad byte:

* UTF-8 (also with a BOM, ``utf-8-sig``), UTF-16 and UTF-32 (``-le``/``-be``,
  or byte order from a BOM);
* the single-byte tables (``ascii``, ``latin-1``, ``iso-8859-*``,
  ``windows-125*``, ``koi8-*``, ``mac-*``, the ``cp*`` code pages, ...);
* the multi-byte East Asian encodings without shift states (``shift_jis``,
  ``euc-jp``, ``gbk``, ``gb18030``, ``big5``, ``euc-kr``, ...).

Every other name decodes as UTF-8 (:attr:`TextDecoder.encoding` says which
codec is used): unknown names, names longer than :data:`MAX_CHARSET_NAME`,
bytes-to-bytes codecs (``base64``, ``zlib``, ``rot13``, ``uu``, ...), and the
text codecs that fail the rule above: ``idna``, ``punycode`` and
``undefined`` raise whatever the handler; ``unicode-escape`` and
``raw-unicode-escape`` are Python literal syntax, not charsets; ``utf-7``,
``hz`` and the ``iso2022_*`` family switch modes with escape sequences (the
WHATWG Encoding Standard refuses UTF-7 and maps HZ and ISO-2022-KR/CN to a
replacement decoder, for the XSS they allow; Python's ISO-2022 decoders raise
a bare ``UnicodeError`` when an escape sequence arrives a byte at a time);
``charmap`` is a mechanism, not a charset; ``mbcs``/``oem`` follow the local
Windows code page.

Names are resolved by this module (Python's aliases, e.g. ``latin1``,
``windows-1252``, ``sjis``), never by handing an unknown name to
:func:`codecs.lookup`: that caches every failed name for the life of the
process, so a server sending a fresh charset per response would grow memory
without bound.

UTF-16 and UTF-32 without a byte order mark are read big-endian, as RFC 2781
§4.3 and the Unicode Standard (§3.10, D98 and D101) say. Browsers differ: the
WHATWG Encoding Standard reads a BOM-less ``utf-16`` label as little-endian,
for web compatibility, and knows no UTF-32. A leading BOM of either order is
honoured and removed. (Python's own ``utf-16``/``utf-32`` decoders refuse a
BOM-less stream with a bare ``UnicodeError``, whatever the error handler.)
"""

from __future__ import annotations

import codecs
import re
from encodings.aliases import aliases as _PYTHON_ALIASES
from functools import lru_cache
from typing import Protocol

from ._exceptions import LocalProtocolError

__all__ = [
    "DEFAULT_CHARSET",
    "MAX_CHARSET_NAME",
    "TextDecoder",
    "charset_from_content_type",
    "check_error_handler",
]

# RFC 8259 makes UTF-8 the JSON default and the Acytoo service sends UTF-8 text.
DEFAULT_CHARSET = "utf-8"

# IANA charset names are at most 40 characters (RFC 2978 §2.3); a longer name
# is not worth normalising.
MAX_CHARSET_NAME = 40

# The rule in the module docstring, as Python's codec module names.
_UNICODE = frozenset(
    {"utf_8", "utf_8_sig", "utf_16", "utf_16_be", "utf_16_le", "utf_32", "utf_32_be", "utf_32_le"}
)
# Stateless per byte: generated tables decoded with codecs.charmap_decode.
_SINGLE_BYTE = frozenset(
    {"ascii", "latin_1", "iso8859_2", "iso8859_3", "iso8859_4", "iso8859_5"}
    | {"iso8859_6", "iso8859_7", "iso8859_8", "iso8859_9", "iso8859_10", "iso8859_11"}
    | {"iso8859_13", "iso8859_14", "iso8859_15", "iso8859_16", "cp1250", "cp1251", "cp1252"}
    | {"cp1253", "cp1254", "cp1255", "cp1256", "cp1257", "cp1258", "cp037", "cp1006"}
    | {"cp1026", "cp1125", "cp1140", "cp273", "cp424", "cp437", "cp500", "cp720", "cp737"}
    | {"cp775", "cp850", "cp852", "cp855", "cp856", "cp857", "cp858", "cp860", "cp861"}
    | {"cp862", "cp863", "cp864", "cp865", "cp866", "cp869", "cp874", "cp875", "hp_roman8"}
    | {"koi8_r", "koi8_t", "koi8_u", "kz1048", "mac_arabic", "mac_croatian", "mac_cyrillic"}
    | {"mac_farsi", "mac_greek", "mac_iceland", "mac_latin2", "mac_roman", "mac_romanian"}
    | {"mac_turkish", "palmos", "ptcp154", "tis_620"}
)
# C decoders whose only state is the bytes of an unfinished character.
_MULTIBYTE = frozenset(
    {"big5", "big5hkscs", "cp932", "cp949", "cp950", "euc_jis_2004", "euc_jisx0213", "euc_jp"}
    | {"euc_kr", "gb18030", "gb2312", "gbk", "johab", "shift_jis", "shift_jis_2004"}
    | {"shift_jisx0213"}
)
_DECODABLE = _UNICODE | _SINGLE_BYTE | _MULTIBYTE

# Python's normalisation of codec names (encodings.normalize_encoding, after
# codecs.lookup lower-cases): runs of other characters become one "_".
_NOT_NAME = re.compile(r"[^0-9a-z.]+")

_UTF8 = codecs.lookup(DEFAULT_CHARSET)
_utf8_decode = codecs.utf_8_decode


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
    """Refuse an error handler that cannot decode, before anything is sent.

    A handler that refuses bad bytes as ``"strict"`` does is fine (decoding
    then raises :class:`UnicodeDecodeError`); an encode-only handler such as
    ``"xmlcharrefreplace"`` would raise :class:`TypeError` mid-body.

    Raises:
        LocalProtocolError: ``errors`` names no registered handler, or one
            that cannot handle a decoding error.
    """
    try:
        codecs.lookup_error(errors)
    except (LookupError, TypeError) as exc:
        raise LocalProtocolError(f"unknown encoding_errors handler {errors!r}") from exc
    try:
        b"\xff".decode("utf-8", errors)
    except UnicodeDecodeError:
        pass
    except (TypeError, ValueError) as exc:
        raise LocalProtocolError(
            f"encoding_errors handler {errors!r} cannot be used for decoding"
        ) from exc


def _text_codec(charset: str | None) -> codecs.CodecInfo:
    """The codec for a server's charset name, by the rule in the module docstring."""
    if not charset or len(charset) > MAX_CHARSET_NAME:
        return _UTF8
    return _codec_for_name(charset)


@lru_cache(maxsize=64)  # Short names only (MAX_CHARSET_NAME); a server repeats its own.
def _codec_for_name(charset: str) -> codecs.CodecInfo:
    name = _NOT_NAME.sub("_", charset.lower()).strip("_")
    module = _PYTHON_ALIASES.get(name) or _PYTHON_ALIASES.get(name.replace(".", "_")) or name
    if module not in _DECODABLE:
        return _UTF8
    try:  # A known module name: codecs caches a bounded set.
        return codecs.lookup(module)
    except LookupError:  # not in this Python
        return _UTF8


class _Incremental(Protocol):
    def decode(self, data: bytes, final: bool = False, /) -> str: ...


class _ByteOrderDecoder:
    """UTF-16 or UTF-32: byte order from a leading BOM, big-endian without one."""

    __slots__ = ("_be", "_decoder", "_errors", "_head", "_le", "_width")

    def __init__(self, width: int, errors: str) -> None:
        self._width = width
        self._errors = errors
        self._le, self._be = (
            (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
            if width == 2
            else (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)
        )
        self._head = b""  # the first bytes, until there are enough for a BOM
        self._decoder: _Incremental | None = None

    def decode(self, data: bytes, final: bool = False) -> str:
        decoder = self._decoder
        if decoder is None:
            data = self._head + data
            if len(data) < self._width and not final:
                self._head = data
                return ""
            self._head = b""
            order = "be"
            if data.startswith(self._le):
                order, data = "le", data[self._width :]
            elif data.startswith(self._be):
                data = data[self._width :]
            name = f"utf-{8 * self._width}-{order}"
            decoder = self._decoder = codecs.getincrementaldecoder(name)(self._errors)
        return decoder.decode(data, final)


class TextDecoder:
    """Decode a byte stream piece by piece, keeping split multi-byte characters whole.

    The charset is chosen by the rule in this module's docstring; anything
    else falls back to UTF-8 (``encoding`` tells which codec is used).
    ``errors`` is a codecs error handler: with ``"replace"`` (default),
    ``"ignore"`` or ``"backslashreplace"``, any bytes decode without raising.
    With ``"strict"`` (or a handler that gives up on some bytes as strict
    does: ``"surrogateescape"`` on bytes below 0x80, ``"surrogatepass"``), a
    bad or cut character raises :class:`UnicodeDecodeError`, and nothing else
    is ever raised. Any split of the same bytes gives the same text (or the
    same error).
    """

    __slots__ = ("_decoder", "_errors", "_pending", "encoding")

    def __init__(self, charset: str | None = None, errors: str = "replace") -> None:
        check_error_handler(errors)
        info = _text_codec(charset)
        self.encoding = info.name
        self._errors = errors
        self._pending = b""  # UTF-8 only: the bytes of an unfinished character
        self._decoder: _Incremental | None
        if info.name == DEFAULT_CHARSET:
            self._decoder = None
        elif info.name in ("utf-16", "utf-32"):
            self._decoder = _ByteOrderDecoder(2 if info.name == "utf-16" else 4, errors)
        else:
            self._decoder = info.incrementaldecoder(errors)

    def decode(self, data: bytes) -> str:
        """Decode the next piece; bytes of an unfinished character are held back."""
        decoder = self._decoder
        if decoder is not None:
            return decoder.decode(data)
        # UTF-8: what codecs' incremental decoder does, minus its Python-level
        # method call per piece.
        pending = self._pending
        if pending:
            data = pending + data
        text, used = _utf8_decode(data, self._errors)
        if pending or used != len(data):
            self._pending = data[used:]
        return text

    def flush(self) -> str:
        """Decode what is held back at the end of the body (a cut character is an error)."""
        decoder = self._decoder
        if decoder is not None:
            return decoder.decode(b"", True)
        pending, self._pending = self._pending, b""
        return _utf8_decode(pending, self._errors, True)[0]
