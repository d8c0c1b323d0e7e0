"""Incremental decoding: charset detection and characters split across pieces."""

from __future__ import annotations

import codecs
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acytoo_raw._decoding import DEFAULT_CHARSET, TextDecoder, charset_from_content_type
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


@pytest.mark.parametrize("charset", ["base64", "zlib", "hex", "rot13", "uu"])
def test_a_charset_naming_a_bytes_codec_falls_back_to_utf8(charset: str) -> None:
    decoder = TextDecoder(charset)
    assert decoder.encoding == "utf-8"
    assert decoder.decode("héllo".encode()) == "héllo"


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
