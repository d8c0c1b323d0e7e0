"""Incremental decoding: charset detection and characters split across pieces."""

from __future__ import annotations

import codecs
import encodings
import importlib
import itertools
import pkgutil
from encodings.aliases import aliases

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acytoo_raw import _decoding
from acytoo_raw._decoding import (
    DEFAULT_CHARSET,
    MAX_CHARSET_NAME,
    TextDecoder,
    charset_from_content_type,
    check_error_handler,
)
from acytoo_raw._exceptions import LocalProtocolError

REPLACEMENT = "\ufffd"
ASTRAL_SAMPLE = "a\U0001f600b\u00e9\u20ac\U00010348z"  # 1-, 2-, 3- and 4-byte UTF-8 chars


@st.composite
def split_bytes(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` cut at any set of positions (empty pieces allowed)."""
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=max(len(data), 1) + 2)))
    bounds = [0, *cuts, len(data)]
    return [data[start:end] for start, end in itertools.pairwise(bounds)]


def feed(decoder: TextDecoder, pieces: list[bytes]) -> str:
    return "".join(decoder.decode(piece) for piece in pieces) + decoder.flush()


# --- charset_from_content_type -------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("text/plain; charset=utf-8", "utf-8"),
        ('text/plain; charset="utf-8"', "utf-8"),
        ('text/plain; charset="ISO-8859-1"', "ISO-8859-1"),
        ("text/plain; CHARSET=latin-1", "latin-1"),
        ("TEXT/PLAIN;Charset=UTF-16", "UTF-16"),
        ("text/plain;charset=utf-8", "utf-8"),
        ("text/plain; format=flowed; charset=utf-16le; delsp=yes", "utf-16le"),
        ("application/json; charset=utf-8; q=0.9", "utf-8"),
        ("text/plain; charset=x-unknown-thing", "x-unknown-thing"),
    ],
)
def test_charset_from_content_type_reads_quoted_any_case_among_other_params(
    content_type: str, expected: str
) -> None:
    assert charset_from_content_type(content_type) == expected


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "text/plain",
        "application/json",
        "text/plain; format=flowed",
        "text/plain; charset=",
    ],
)
def test_charset_from_content_type_without_charset_is_none(content_type: str | None) -> None:
    assert charset_from_content_type(content_type) is None


# --- TextDecoder: charset choice -----------------------------------------------------


def test_default_charset_is_utf8() -> None:
    assert DEFAULT_CHARSET == "utf-8"
    assert TextDecoder().encoding == "utf-8"
    assert TextDecoder(None).encoding == "utf-8"


@pytest.mark.parametrize("charset", ["x-no-such-charset", "utf-9", "bogus"])
def test_unknown_charset_falls_back_to_utf8(charset: str) -> None:
    decoder = TextDecoder(charset)
    assert decoder.encoding == "utf-8"
    assert feed(decoder, ["h\u00e9\U0001f600".encode()]) == "h\u00e9\U0001f600"


@pytest.mark.parametrize(
    ("charset", "encoding"),
    [
        ("UTF-8", "utf-8"),
        ("latin-1", "iso8859-1"),
        ("utf-16-le", "utf-16-le"),
        ("utf-16", "utf-16"),
    ],
)
def test_known_charset_is_used_case_insensitively(charset: str, encoding: str) -> None:
    assert TextDecoder(charset).encoding == encoding


def test_latin1_body_is_not_decoded_as_utf8() -> None:
    assert feed(TextDecoder("latin-1"), [b"caf\xe9"]) == "caf\u00e9"


def test_unknown_error_handler_fails_at_construction() -> None:
    with pytest.raises(LocalProtocolError, match="no-such-handler"):
        TextDecoder(errors="no-such-handler")


@pytest.mark.parametrize("errors", ["xmlcharrefreplace", "namereplace"])
def test_an_encode_only_error_handler_fails_at_construction(errors: str) -> None:
    # It would raise TypeError at the first bad byte of the body.
    with pytest.raises(LocalProtocolError, match=errors):
        check_error_handler(errors)
    with pytest.raises(LocalProtocolError, match=errors):
        TextDecoder(errors=errors)


@pytest.mark.parametrize(
    "errors",
    ["strict", "replace", "ignore", "backslashreplace", "surrogateescape", "surrogatepass"],
)
def test_decoding_error_handlers_are_accepted(errors: str) -> None:
    check_error_handler(errors)
    assert TextDecoder(errors=errors).decode(b"ok") == "ok"


@pytest.mark.parametrize("charset", ["base64", "zlib", "hex", "rot13", "uu", "bz2", "quopri"])
def test_a_charset_naming_a_bytes_codec_falls_back_to_utf8(charset: str) -> None:
    decoder = TextDecoder(charset)
    assert decoder.encoding == "utf-8"
    assert decoder.decode("héllo".encode()) == "héllo"


# Issue 10 item 1: each of these made decoding raise a bare UnicodeError (or
# gave different text for different splits) in replace mode.
@pytest.mark.parametrize(
    "charset",
    [
        "idna",
        "punycode",
        "undefined",
        "unicode-escape",
        "raw-unicode-escape",
        "utf-7",
        "hz",
        "hz-gb-2312",
        "iso-2022-jp",
        "csISO2022KR",
        "iso2022_jp_2",
        "charmap",
        "mbcs",
        "oem",
        "ansi",
        "aliases",
        "x-user-defined",
        "utf-8\x00",
        "\udcff",
        "é",
        "u" * (MAX_CHARSET_NAME + 1),
    ],
)
def test_a_charset_that_could_raise_or_depend_on_the_split_falls_back_to_utf8(
    charset: str,
) -> None:
    decoder = TextDecoder(charset)
    assert decoder.encoding == "utf-8"
    assert feed(decoder, [b"a\xff", b"\x1b$B~{+A\\u00", b"e9\xe2\x82", b"\xac"]) == (
        "a\ufffd\x1b$B~{+A\\u00e9\u20ac"
    )


@pytest.mark.parametrize(
    ("charset", "encoding", "text"),
    [
        ("windows-1252", "cp1252", "caf\u00e9 \u20ac"),
        ("ISO-8859-15", "iso8859-15", "caf\u00e9 \u20ac"),
        ("koi8-r", "koi8-r", "\u043f\u0440\u0438\u0432\u0435\u0442"),
        ("Shift_JIS", "shift_jis", "\u65e5\u672c\u8a9e\uff8a"),
        ("sjis", "shift_jis", "\u65e5\u672c"),
        ("EUC-JP", "euc_jp", "\u65e5\u672c\u8a9e"),
        ("GBK", "gbk", "\u4e2d\u6587"),
        ("gb18030", "gb18030", "\u4e2d\u6587\U0001f600"),
        ("Big5", "big5", "\u7e41\u9ad4"),
        ("EUC-KR", "euc_kr", "\ud55c\uad6d\uc5b4"),
        ("ks_c_5601-1987", "euc_kr", "\ud55c\uad6d\uc5b4"),
        ("macintosh", "mac-roman", "caf\u00e9"),
        ("US-ASCII", "ascii", "plain"),
        ("utf-8-sig", "utf-8-sig", "\u00e9"),
        ("UTF-32LE", "utf-32-le", "\U0001f600"),
    ],
)
def test_a_real_charset_is_decoded_with_its_codec(charset: str, encoding: str, text: str) -> None:
    body = codecs.encode(text, encoding)
    decoder = TextDecoder(charset)
    assert decoder.encoding == codecs.lookup(encoding).name
    assert feed(decoder, [body[i : i + 1] for i in range(len(body))]) == text


def test_unknown_charset_names_do_not_grow_the_codec_cache() -> None:
    # codecs.lookup remembers every name that failed, for the life of the process.
    cache = getattr(encodings, "_cache")  # noqa: B009 - private, and exactly what is checked
    before = len(cache)
    for i in range(500):
        assert TextDecoder(f"x-charset-{i}").encoding == "utf-8"
    assert len(cache) == before


# --- TextDecoder: any split gives the original text ----------------------------------


@given(data=st.data(), text=st.text())
def test_utf8_any_split_decodes_to_original_text(data: st.DataObject, text: str) -> None:
    body = text.encode("utf-8")
    assert feed(TextDecoder("utf-8"), data.draw(split_bytes(body))) == text


@given(data=st.data(), text=st.lists(st.characters(min_codepoint=0x10000)).map("".join))
def test_utf8_any_split_of_astral_only_text_decodes_to_original(
    data: st.DataObject, text: str
) -> None:
    body = text.encode("utf-8")
    assert feed(TextDecoder("utf-8"), data.draw(split_bytes(body))) == text


@pytest.mark.parametrize("charset", ["utf-8", "utf-16", "utf-16-le"])
def test_every_two_cut_split_of_a_mixed_width_sample_decodes_to_original(charset: str) -> None:
    body = ASTRAL_SAMPLE.encode(charset)
    for first in range(len(body) + 1):
        for second in range(first, len(body) + 1):
            pieces = [body[:first], body[first:second], body[second:]]
            assert feed(TextDecoder(charset), pieces) == ASTRAL_SAMPLE, (first, second)


def test_utf8_four_byte_char_split_byte_by_byte_is_held_back_then_whole() -> None:
    decoder = TextDecoder("utf-8")
    smiley = "\U0001f600".encode()
    assert [decoder.decode(smiley[i : i + 1]) for i in range(4)] == ["", "", "", "\U0001f600"]
    assert decoder.flush() == ""


@given(data=st.data(), text=st.text())
def test_utf16_with_bom_any_split_decodes_to_original_text(data: st.DataObject, text: str) -> None:
    body = text.encode("utf-16")  # native byte order with a BOM
    assert body[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
    assert feed(TextDecoder("utf-16"), data.draw(split_bytes(body))) == text


@given(data=st.data(), text=st.text())
def test_utf16_big_endian_bom_any_split_decodes_to_original_text(
    data: st.DataObject, text: str
) -> None:
    body = codecs.BOM_UTF16_BE + text.encode("utf-16-be")
    assert feed(TextDecoder("utf-16"), data.draw(split_bytes(body))) == text


@given(data=st.data(), text=st.text())
def test_utf16_le_any_split_decodes_to_original_text(data: st.DataObject, text: str) -> None:
    body = text.encode("utf-16-le")
    assert feed(TextDecoder("utf-16-le"), data.draw(split_bytes(body))) == text


@given(data=st.data(), text=st.text(alphabet=st.characters(max_codepoint=0xFF)))
def test_latin1_any_split_decodes_to_original_text(data: st.DataObject, text: str) -> None:
    body = text.encode("latin-1")
    assert feed(TextDecoder("latin-1"), data.draw(split_bytes(body))) == text


@given(data=st.data(), body=st.binary())
def test_utf8_replace_on_any_bytes_any_split_equals_one_shot_decode(
    data: st.DataObject, body: bytes
) -> None:
    pieces = data.draw(split_bytes(body))
    assert feed(TextDecoder("utf-8", errors="replace"), pieces) == body.decode("utf-8", "replace")


@given(data=st.data(), body=st.binary())
def test_utf8_strict_raises_exactly_when_the_body_is_invalid(
    data: st.DataObject, body: bytes
) -> None:
    pieces = data.draw(split_bytes(body))
    try:
        expected = body.decode("utf-8")
    except UnicodeDecodeError:
        with pytest.raises(UnicodeDecodeError):
            feed(TextDecoder("utf-8", errors="strict"), pieces)
    else:
        assert feed(TextDecoder("utf-8", errors="strict"), pieces) == expected


# --- TextDecoder: invalid and truncated input ----------------------------------------


def test_strict_raises_unicode_decode_error_on_invalid_byte() -> None:
    decoder = TextDecoder("utf-8", errors="strict")
    assert decoder.decode(b"ok") == "ok"
    with pytest.raises(UnicodeDecodeError):
        decoder.decode(b"\xff")


def test_replace_is_the_default_and_gives_replacement_character() -> None:
    assert feed(TextDecoder("utf-8"), [b"a\xffb"]) == f"a{REPLACEMENT}b"


def test_truncated_multibyte_char_at_end_flushes_to_replacement_character() -> None:
    decoder = TextDecoder("utf-8", errors="replace")
    assert decoder.decode(b"ok\xe2\x82") == "ok"  # held back: may be completed later
    assert decoder.flush() == REPLACEMENT


def test_truncated_multibyte_char_at_end_raises_on_flush_when_strict() -> None:
    decoder = TextDecoder("utf-8", errors="strict")
    assert decoder.decode(b"ok\xf0\x9f\x98") == "ok"
    with pytest.raises(UnicodeDecodeError):
        decoder.flush()


def test_truncated_utf16_code_unit_flushes_to_replacement_character() -> None:
    decoder = TextDecoder("utf-16-le")
    assert decoder.decode(b"a\x00b") == "a"
    assert decoder.flush() == REPLACEMENT


def test_ignore_handler_drops_invalid_bytes() -> None:
    assert feed(TextDecoder("utf-8", errors="ignore"), [b"a\xff", b"b\xe2\x82"]) == "ab"


# --- UTF-16 and UTF-32: byte order --------------------------------------------------


@pytest.mark.parametrize(
    ("charset", "body", "text"),
    [
        # No BOM: big-endian (RFC 2781 §4.3; the Unicode Standard D98, D101).
        ("utf-16", b"\x00h\x00\xe9\xd8\x3d\xde\x00", "h\u00e9\U0001f600"),
        ("UTF-16", b"\x00h\x00i", "hi"),
        ("utf-32", b"\x00\x00\x00h\x00\x01\xf6\x00", "h\U0001f600"),
        # A BOM of either order is honoured and removed; later U+FEFF stays.
        ("utf-16", codecs.BOM_UTF16_LE + b"h\x00\xff\xfe", "h\ufeff"),
        ("utf-16", codecs.BOM_UTF16_BE + b"\x00h\xfe\xff", "h\ufeff"),
        ("utf-32", codecs.BOM_UTF32_LE + b"h\x00\x00\x00", "h"),
        ("utf-32", codecs.BOM_UTF32_BE + b"\x00\x00\x00h", "h"),
        # FF FE is not a UTF-32 BOM unless 00 00 follows: big-endian, out of range.
        ("utf-32", b"\xff\xfeh\x00", REPLACEMENT),
        ("utf-16", b"", ""),
        ("utf-16", b"\xff", REPLACEMENT),
        ("utf-16", codecs.BOM_UTF16_LE, ""),
        ("utf-32", b"\x00\x00\xfe", REPLACEMENT),
        ("utf-16", b"\x00h\xd8\x3d", "h" + REPLACEMENT),  # a cut surrogate pair
    ],
)
def test_utf16_and_utf32_byte_order_any_split(charset: str, body: bytes, text: str) -> None:
    for first in range(len(body) + 1):
        for second in range(first, len(body) + 1):
            pieces = [body[:first], body[first:second], body[second:]]
            assert feed(TextDecoder(charset), pieces) == text, (first, second)


def test_utf16_without_bom_strict_raises_only_unicode_decode_error() -> None:
    assert feed(TextDecoder("utf-16", errors="strict"), [b"\x00h", b"\x00i"]) == "hi"
    decoder = TextDecoder("utf-16", errors="strict")
    assert decoder.decode(b"\x00h\x00") == "h"
    with pytest.raises(UnicodeDecodeError):
        decoder.flush()
    with pytest.raises(UnicodeDecodeError):
        TextDecoder("utf-32", errors="strict").decode(b"\x00\x11\x00\x00")


# --- every codec name Python knows: never raises, never depends on the split ---------


def _codec_names() -> list[str]:
    names = set(aliases) | set(aliases.values())
    names |= {module.name for module in pkgutil.iter_modules(encodings.__path__)}
    names |= {"utf-8", "UTF-16LE", "latin-1", "mbcs", "oem", "ansi", "x-user-defined", ""}
    return sorted(names)


CODEC_NAMES = _codec_names()
HOSTILE_PIECES = [
    codecs.BOM_UTF8,
    codecs.BOM_UTF16_LE,
    codecs.BOM_UTF16_BE,
    codecs.BOM_UTF32_LE,
    b"\x1b$B",  # ISO-2022-JP: to JIS X 0208
    b"\x1b$)C\x0e",  # ISO-2022-KR: designate, shift out
    b"\x1b(B",
    b"\x1b$(" + b"\x1b" * 10,  # an escape sequence that never ends
    b"~{",  # HZ: to GB2312
    b"~}",
    b"+AGE",  # UTF-7 base64
    b"-",
    b"\\u00e9\\U0001F600\\x4\\55c\\",  # unicode-escape
    b"xn--",
    b"\xff\xfe\xfd",
    b"\x80\xa0\xe0\xf0\xf8",
    b"\xd8\x3d",  # half a UTF-16 surrogate pair
    b"\x00\x11\x00\x00",  # beyond U+10FFFF in UTF-32
    "日本語".encode("shift_jis"),
    "日本語".encode("euc_jp"),
    "中文\U0001f600".encode("gb18030"),
    "한국".encode("euc_kr"),
    "h\u00e9\U0001f600".encode(),
    b"plain ascii",
]
BODIES = st.lists(
    st.one_of(st.sampled_from(HOSTILE_PIECES), st.binary(max_size=6)), max_size=8
).map(b"".join)


def _decode_or_error(charset: str, errors: str, pieces: list[bytes]) -> str | type:
    """The text, or UnicodeDecodeError; any other exception fails the test."""
    try:
        return feed(TextDecoder(charset, errors=errors), pieces)
    except UnicodeDecodeError:
        assert errors in ("strict", "surrogateescape")  # it gives up on bytes below 0x80
        return UnicodeDecodeError


def _splits(body: bytes) -> list[list[bytes]]:
    return [
        [body[i : i + 1] for i in range(len(body))],
        [body[i : i + 3] for i in range(0, len(body), 3)],
        [body[:2], b"", body[2:]],
    ]


def test_every_codec_name_decodes_hostile_bytes_whatever_the_split() -> None:
    """Issue 10 item 1, for every codec name and alias of this Python."""
    everything = b"".join(HOSTILE_PIECES)
    bodies = [everything, *HOSTILE_PIECES, *(b"a" + piece + b"\xff" for piece in HOSTILE_PIECES)]
    for charset in CODEC_NAMES:
        for errors in ("replace", "strict", "ignore", "backslashreplace", "surrogateescape"):
            for body in bodies if errors in ("replace", "strict") else [everything]:
                whole = _decode_or_error(charset, errors, [body])
                for pieces in _splits(body):
                    assert _decode_or_error(charset, errors, pieces) == whole, (charset, body)


@settings(max_examples=200, deadline=None)
@given(charset=st.sampled_from(CODEC_NAMES), body=BODIES, data=st.data())
def test_any_codec_name_any_bytes_any_split_replace_never_raises(
    charset: str, body: bytes, data: st.DataObject
) -> None:
    whole = feed(TextDecoder(charset), [body])
    assert feed(TextDecoder(charset), data.draw(split_bytes(body))) == whole


@settings(max_examples=200, deadline=None)
@given(charset=st.sampled_from(CODEC_NAMES), body=BODIES, data=st.data())
def test_any_codec_name_strict_raises_only_unicode_decode_error_split_independently(
    charset: str, body: bytes, data: st.DataObject
) -> None:
    whole = _decode_or_error(charset, "strict", [body])
    assert _decode_or_error(charset, "strict", data.draw(split_bytes(body))) == whole


def _module_of(name: str) -> str | None:
    try:
        decoder = codecs.lookup(name).incrementaldecoder
    except (LookupError, ValueError):
        return None
    module = getattr(decoder, "__module__", "")
    return module.removeprefix("encodings.") if module.startswith("encodings.") else None


def test_names_resolve_as_python_resolves_them_when_decodable() -> None:
    decodable = getattr(_decoding, "_DECODABLE")  # noqa: B009 - the rule under test
    used = set()
    for charset in CODEC_NAMES:
        module = _module_of(charset)
        encoding = TextDecoder(charset).encoding
        if module in decodable:
            assert encoding == codecs.lookup(charset).name, charset
            used.add(module)
        else:
            assert encoding == "utf-8", charset
    assert used == decodable  # every codec of the rule is reachable by some name


def test_the_single_byte_codecs_are_stateless_tables() -> None:
    for module_name in getattr(_decoding, "_SINGLE_BYTE"):  # noqa: B009
        module = importlib.import_module(f"encodings.{module_name}")
        assert module_name in ("ascii", "latin_1") or hasattr(module, "decoding_table")
