"""Server-sent-events decoding: WHATWG spec vectors, any split of the stream, bounds."""

from __future__ import annotations

import codecs
import dataclasses
import itertools
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acytoo_raw import _sse
from acytoo_raw._exceptions import RemoteProtocolError
from acytoo_raw._sse import MAX_EVENT_SIZE, MAX_RETRY, ServerSentEvent, SSEDecoder

E = ServerSentEvent
BOM = "\ufeff".encode()
MAX_EXAMPLES = 200


def run(pieces: list[bytes]) -> tuple[list[ServerSentEvent], bool]:
    """Feed ``pieces`` then EOF; the events delivered and whether the stream failed."""
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    try:
        for piece in pieces:
            events += decoder.feed(piece)
        events += decoder.feed_eof()
    except RemoteProtocolError:
        return events, True
    return events, False


def byte_by_byte(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def reference(data: bytes, limit: int = MAX_EVENT_SIZE) -> tuple[list[ServerSentEvent], bool]:
    """The WHATWG algorithm transcribed literally, on the whole stream at once.

    ``limit`` mirrors the decoder's documented bound: a line (ended or not) plus
    the data buffered before it may not exceed it. Trailing bytes of an
    unfinished character are dropped (they could only belong to the discarded
    unterminated line).
    """
    text = codecs.utf_8_decode(data, "replace", False)[0]
    if text.startswith("\ufeff"):
        text = text[1:]
    lines: list[str] = []
    start = pos = 0
    while pos < len(text):
        if text[pos] in "\r\n":
            lines.append(text[start:pos])
            if text[pos] == "\r" and text[pos + 1 : pos + 2] == "\n":
                pos += 1
            start = pos + 1
        pos += 1
    tail = text[start:]
    events: list[ServerSentEvent] = []
    data_buffer = event_type = ""
    last_id: str | None = None
    retry: int | None = None
    for line in lines:
        if len(line) + len(data_buffer) > limit:
            return events, True
        if line == "":
            if data_buffer == "":
                event_type = ""
                continue
            if data_buffer.endswith("\n"):
                data_buffer = data_buffer[:-1]
            events.append(E(event_type or "message", data_buffer, last_id, retry))
            data_buffer = event_type = ""
            continue
        if line.startswith(":"):
            continue
        if ":" in line:
            name, value = line.split(":", 1)
            if value.startswith(" "):
                value = value[1:]
        else:
            name, value = line, ""
        if name == "event":
            event_type = value
        elif name == "data":
            data_buffer += value + "\n"
        elif name == "id":
            if "\x00" not in value:
                last_id = value
        elif (
            name == "retry"
            and value
            and all(c in "0123456789" for c in value)
            and len(value.lstrip("0")) <= 20
            and int(value.lstrip("0") or "0") <= MAX_RETRY
        ):
            retry = int(value.lstrip("0") or "0")
    if len(tail) + len(data_buffer) > limit:
        return events, True
    return events, False


@st.composite
def split_bytes(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` cut at any set of positions (empty pieces allowed)."""
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=max(len(data), 1) + 2)))
    bounds = [0, *cuts, len(data)]
    return [data[start:end] for start, end in itertools.pairwise(bounds)]


# --- spec vectors ---------------------------------------------------------------------

# (id, pieces fed in order, expected events). Each vector is also checked fed whole, fed
# byte by byte and against the literal transcription above.
VECTORS: list[tuple[str, list[bytes], list[ServerSentEvent]]] = [
    ("basic", [b"data: hello\n\n"], [E(data="hello")]),
    ("type-defaults-to-message", [b"data: x\n\n"], [E("message", "x")]),
    ("event-field", [b"event: add\ndata: 1\n\n"], [E("add", "1")]),
    ("event-empty-is-message", [b"event:\ndata: x\n\n"], [E("message", "x")]),
    (
        "event-reset-after-dispatch",
        [b"event: a\ndata: 1\n\ndata: 2\n\n"],
        [E("a", "1"), E(data="2")],
    ),
    ("event-reset-by-undispatched-blank", [b"event: a\n\ndata: 2\n\n"], [E(data="2")]),
    ("event-last-wins", [b"event: a\nevent: b\ndata: 1\n\n"], [E("b", "1")]),
    ("data-lines-joined", [b"data: a\ndata: b\ndata: c\n\n"], [E(data="a\nb\nc")]),
    ("data-no-colon-empty-line", [b"data\n\n"], [E(data="")]),
    ("data-no-colon-between", [b"data: a\ndata\ndata: b\n\n"], [E(data="a\n\nb")]),
    ("data-colon-twice", [b"data:\ndata:\n\n"], [E(data="\n")]),
    ("data-one-space-only", [b"data: \n\n"], [E(data="")]),
    ("one-leading-space-removed", [b"data:  two\n\n"], [E(data=" two")]),
    ("no-space-after-colon", [b"data:x\n\n"], [E(data="x")]),
    ("tab-not-removed", [b"data:\tx\n\n"], [E(data="\tx")]),
    ("trailing-space-kept", [b"data: x \n\n"], [E(data="x ")]),
    ("split-at-first-colon", [b"data: a:b: c\n\n"], [E(data="a:b: c")]),
    ("comment", [b": hi\ndata: x\n:\n:no space\n\n"], [E(data="x")]),
    ("comment-only-block", [b": keep-alive\n\n"], []),
    ("empty-data-not-dispatched-event", [b"event: x\n\n"], []),
    ("empty-data-not-dispatched-id", [b"id: 1\n\n"], []),
    ("empty-data-not-dispatched-retry", [b"retry: 5\n\n"], []),
    ("blank-lines-only", [b"\n\n\r\n\r\r"], []),
    ("id-set", [b"id: 1\ndata: a\n\n"], [E(data="a", id="1")]),
    ("id-none-until-set", [b"data: a\n\n"], [E(data="a", id=None)]),
    ("id-persists", [b"id: 1\ndata: a\n\ndata: b\n\n"], [E(data="a", id="1"), E(data="b", id="1")]),
    ("id-from-undispatched-block", [b"id: 7\n\ndata: x\n\n"], [E(data="x", id="7")]),
    (
        "id-with-nul-ignored",
        [b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n"],
        [E(data="a", id="1"), E(data="b", id="1")],
    ),
    ("id-with-nul-first-stays-none", [b"id: \x00\ndata: a\n\n"], [E(data="a", id=None)]),
    (
        "id-set-to-empty",
        [b"id: 1\ndata: a\n\nid:\ndata: b\n\n"],
        [E(data="a", id="1"), E(data="b", id="")],
    ),
    (
        "id-no-colon-is-empty",
        [b"id: 1\ndata: a\n\nid\ndata: b\n\n"],
        [E(data="a", id="1"), E(data="b", id="")],
    ),
    ("id-keeps-spaces", [b"id:  a b \ndata: x\n\n"], [E(data="x", id=" a b ")]),
    ("retry", [b"retry: 1000\ndata: a\n\n"], [E(data="a", retry=1000)]),
    (
        "retry-persists",
        [b"retry: 5\ndata: a\n\ndata: b\n\n"],
        [E(data="a", retry=5), E(data="b", retry=5)],
    ),
    ("retry-leading-zeros", [b"retry: 007\ndata: a\n\n"], [E(data="a", retry=7)]),
    ("retry-zero", [b"retry:0\ndata: a\n\n"], [E(data="a", retry=0)]),
    (
        "retry-non-digit-ignored",
        [b"retry: 5\ndata: a\n\nretry: 10a\ndata: b\n\n"],
        [E(data="a", retry=5), E(data="b", retry=5)],
    ),
    ("retry-negative-ignored", [b"retry: -1\ndata: a\n\n"], [E(data="a")]),
    ("retry-decimal-ignored", [b"retry: 1.5\ndata: a\n\n"], [E(data="a")]),
    ("retry-two-spaces-ignored", [b"retry:  5\ndata: a\n\n"], [E(data="a")]),
    ("retry-trailing-space-ignored", [b"retry: 5 \ndata: a\n\n"], [E(data="a")]),
    ("retry-empty-ignored", [b"retry:\ndata: a\n\nretry\ndata: b\n\n"], [E(data="a"), E(data="b")]),
    (
        "retry-non-ascii-digits-ignored",
        ["retry: \u0663\ndata: a\n\nretry: \u00b2\ndata: b\n\n".encode()],
        [E(data="a"), E(data="b")],
    ),
    (
        "retry-largest",
        [f"retry: {MAX_RETRY}\ndata: a\n\n".encode()],
        [E(data="a", retry=MAX_RETRY)],
    ),
    (
        "retry-overflow-ignored",
        [f"retry: 3\nretry: {MAX_RETRY + 1}\ndata: a\n\n".encode()],
        [E(data="a", retry=3)],
    ),
    ("retry-huge-ignored", [b"retry: " + b"9" * 5000 + b"\ndata: a\n\n"], [E(data="a")]),
    ("retry-many-zeros", [b"retry: " + b"0" * 5000 + b"12\ndata: a\n\n"], [E(data="a", retry=12)]),
    ("unknown-field-ignored", [b"foo: bar\ndata: x\nfoo\n\n"], [E(data="x")]),
    ("unknown-field-only", [b"foo: bar\n\n"], []),
    ("field-names-case-sensitive", [b"Data: x\nEVENT: y\n\n"], []),
    ("field-name-with-space", [b"data : x\n\n"], []),
    ("lf", [b"data: a\n\ndata: b\n\n"], [E(data="a"), E(data="b")]),
    ("crlf", [b"data: a\r\n\r\ndata: b\r\n\r\n"], [E(data="a"), E(data="b")]),
    ("lone-cr", [b"data: a\r\rdata: b\r\r"], [E(data="a"), E(data="b")]),
    ("mixed-line-ends", [b"data: a\rdata: b\r\ndata: c\n\r\n"], [E(data="a\nb\nc")]),
    ("cr-cr-lf", [b"data: a\r\r\ndata: b\n\n"], [E(data="a"), E(data="b")]),
    ("lf-cr", [b"data: a\n\rdata: b\n\n"], [E(data="a"), E(data="b")]),
    ("crlf-split-across-feeds", [b"data: a\r", b"\ndata: b\r\n\r\n"], [E(data="a\nb")]),
    ("crlf-split-empty-feed-between", [b"data: a\r", b"", b"\ndata: b\n\n"], [E(data="a\nb")]),
    ("crlf-split-blank-line", [b"data: a\r\n\r", b"\ndata: b\n\n"], [E(data="a"), E(data="b")]),
    ("cr-end-then-other-text", [b"data: a\r", b"data: b\n", b"\n"], [E(data="a\nb")]),
    ("cr-end-then-cr", [b"data: a\r", b"\r\n"], [E(data="a")]),
    ("cr-then-multibyte-held", [b"data: a\r", b"\xe2", b"\x82\xac: x\n\n"], [E(data="a")]),
    ("bom-stripped", [BOM + b"data: a\n\n"], [E(data="a")]),
    ("bom-split-across-feeds", [b"\xef", b"\xbb", b"\xbfdata: a\n\n"], [E(data="a")]),
    ("bom-after-empty-feed", [b"", BOM + b"data: a\n\n"], [E(data="a")]),
    ("bom-only-once", [BOM + BOM + b"data: a\n\ndata: b\n\n"], [E(data="b")]),
    ("bom-only-once-split", [BOM, BOM + b"data: a\n\ndata: b\n\n"], [E(data="b")]),
    ("bom-not-stripped-later", [b"data: a\n\n" + BOM + b"data: b\n\n"], [E(data="a")]),
    ("bom-not-stripped-at-feed-start", [b"data: a\n\n", BOM + b"data: b\n\n"], [E(data="a")]),
    ("bom-in-data-kept", [b"data: " + BOM + b"x\n\n"], [E(data="\ufeffx")]),
    ("bom-alone-then-lines", [BOM, b"data: a\n\n"], [E(data="a")]),
    (
        "no-other-line-breaks",
        ["data: a\u2028b\u2029c\x85d\x0be\x0cf\x1cg\x1dh\x1ei\n\n".encode()],
        [E(data="a\u2028b\u2029c\x85d\x0be\x0cf\x1cg\x1dh\x1ei")],
    ),
    ("u2028-in-field-name", ["data\u2028: x\n\n".encode()], []),
    ("nul-in-data-kept", [b"data: a\x00b\n\n"], [E(data="a\x00b")]),
    ("unterminated-event-discarded", [b"data: a\n"], []),
    ("unterminated-line-discarded", [b"data: a"], []),
    ("unterminated-after-event", [b"data: a\n\ndata: b\n"], [E(data="a")]),
    ("unterminated-cr-only-one-line-end", [b"data: a\r\n"], []),
    ("utf8-split", [b"data: \xe2\x82", b"\xac\n\n"], [E(data="\u20ac")]),
    (
        "utf8-4-byte-split-each",
        [b"data: \xf0", b"\x9f", b"\x98", b"\x80!\n\n"],
        [E(data="\U0001f600!")],
    ),
    ("invalid-utf8-replaced", [b"data: \xff\xfeA\n\n"], [E(data="\ufffd\ufffdA")]),
    ("truncated-sequence-one-replacement", [b"data: \xe2\x82A\n\n"], [E(data="\ufffdA")]),
    ("truncated-sequence-split", [b"data: \xe2", b"\x82", b"A\n\n"], [E(data="\ufffdA")]),
    ("surrogate-bytes-replaced", [b"data: \xed\xa0\x80\n\n"], [E(data="\ufffd" * 3)]),
    ("overlong-replaced", [b"data: \xc0\xaf\n\n"], [E(data="\ufffd\ufffd")]),
    ("truncated-before-line-end", [b"data: \xe2\x82\n\n"], [E(data="\ufffd")]),
    ("bom-half-is-not-bom", [b"\xef\xbb", b"data: a\n\n"], []),
    (
        "several-events-one-feed",
        [b"event: a\ndata: 1\n\nid: x\ndata: 2\n\nretry: 9\nevent: c\ndata: 3\n\n"],
        [E("a", "1"), E("message", "2", "x"), E("c", "3", "x", 9)],
    ),
    (
        "openai-chunks",
        [b'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\n', b"data: [DONE]\n\n"],
        [E(data='{"choices":[{"delta":{"content":"Hi"}}]}'), E(data="[DONE]")],
    ),
]


@pytest.mark.parametrize(
    ("pieces", "expected"), [pytest.param(p, e, id=name) for name, p, e in VECTORS]
)
def test_spec_vector(pieces: list[bytes], expected: list[ServerSentEvent]) -> None:
    assert run(pieces) == (expected, False)
    whole = b"".join(pieces)
    assert run([whole]) == (expected, False)
    assert run(byte_by_byte(whole)) == (expected, False)
    assert reference(whole) == (expected, False)


def test_vector_ids_are_unique() -> None:
    names = [name for name, _, _ in VECTORS]
    assert len(names) == len(set(names))


def test_feed_returns_events_as_soon_as_their_blank_line_arrives() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n") == []
    assert decoder.feed(b"\n") == [E(data="a")]
    assert decoder.feed(b"data: b\n\ndata: c\n\ndata: d") == [E(data="b"), E(data="c")]
    assert decoder.feed(b"") == []
    assert decoder.feed_eof() == []


def test_feed_eof_discards_the_pending_event_and_leaves_the_decoder_as_new() -> None:
    decoder = SSEDecoder()
    first = b"id: 1\nretry: 5\nevent: x\ndata: a\n\nevent: y\ndata: pending\ndata: b\r"
    assert decoder.feed(first) == [E("x", "a", "1", 5)]
    assert decoder.feed_eof() == []
    # A BOM is stripped again; data, event type, id and retry are forgotten.
    assert decoder.feed(BOM + b"data: c\n\n") == [E(data="c")]
    assert decoder.feed(b"data: \xe2\x82") == []
    assert decoder.feed_eof() == []
    assert decoder.feed(b"\xacdata: d\n\n") == []  # held bytes dropped: "\ufffddata" field


# --- hypothesis: any split gives the same events as the literal spec --------------------

SPECIAL_CHARS = ":  \t\x00\u2028\u2029\x85\x0b\x0c\ufeff\ufffd\u20ac\U0001f600019"
VALUES = st.text(
    st.one_of(st.sampled_from(list(SPECIAL_CHARS)), st.characters(codec="utf-8")),
    max_size=8,
)
FIELD_NAMES = st.sampled_from(
    ["data"] * 4 + ["event", "id", "retry"] * 2 + ["foo", "Data", "", "data ", "\ufeffdata"]
)
LINE_ENDS = st.sampled_from(["\n", "\r", "\r\n"])


@st.composite
def field_lines(draw: st.DrawFn) -> str:
    name = draw(FIELD_NAMES)
    if draw(st.booleans()):
        return name  # no colon: a field with an empty value
    space = draw(st.sampled_from(["", " ", "  "]))
    if name == "retry" and draw(st.booleans()):
        return f"retry:{space}{draw(st.integers(0, 2**70))}"
    return f"{name}:{space}{draw(VALUES)}"


LINES = st.one_of(
    st.just(""), st.just(""), field_lines(), field_lines(), VALUES.map(lambda v: ":" + v), VALUES
)


@st.composite
def event_streams(draw: st.DrawFn) -> bytes:
    """Text event streams with every kind of line, line end, BOM and an optional tail."""
    # Mostly blocks of a few lines ended by a blank line, so that most streams dispatch.
    blocks = draw(st.lists(st.lists(LINES, min_size=1, max_size=4).map(lambda b: [*b, ""])))
    lines = [line for block in blocks[:8] for line in block]
    body = "".join(line + draw(LINE_ENDS) for line in lines)
    prefix = draw(st.sampled_from(["", "", "\ufeff", "\ufeff\ufeff"]))
    tail = draw(st.one_of(st.just(""), LINES))
    return (prefix + body + tail).encode()


FRAGMENTS = st.sampled_from(
    [
        *(b"\r", b"\n", b"\r\n", b"\n\n", b"data", b"data:", b"id", b"retry", b"event", b":"),
        *(b" ", b"1", b"\x00"),
        *(
            BOM,
            b"\xef\xbb",
            b"\xe2\x82",
            b"\xe2\x82\xac",
            b"\xf0\x9f\x98",
            b"\xff",
            b"\xed\xa0\x80",
        ),
    ]
)
GARBAGE = st.lists(st.one_of(FRAGMENTS, st.binary(max_size=6)), max_size=40).map(b"".join)


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(data=st.data(), stream=event_streams())
def test_any_split_of_an_event_stream_gives_the_spec_events(
    data: st.DataObject, stream: bytes
) -> None:
    expected = reference(stream)
    assert expected[1] is False
    assert run([stream]) == expected
    assert run(byte_by_byte(stream)) == expected
    assert run(data.draw(split_bytes(stream))) == expected


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(data=st.data(), garbage=GARBAGE)
def test_garbage_never_raises_below_the_limit_and_matches_the_spec(
    data: st.DataObject, garbage: bytes
) -> None:
    expected = reference(garbage)
    assert expected[1] is False
    assert run([garbage]) == expected
    assert run(byte_by_byte(garbage)) == expected
    assert run(data.draw(split_bytes(garbage))) == expected


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(data=st.data(), stream=st.one_of(event_streams(), GARBAGE), limit=st.integers(0, 40))
def test_limit_fails_at_the_same_place_however_the_stream_is_split(
    data: st.DataObject, stream: bytes, limit: int
) -> None:
    expected = reference(stream, limit)
    with mock.patch.object(_sse, "MAX_EVENT_SIZE", limit):
        assert run([stream]) == expected
        assert run(byte_by_byte(stream)) == expected
        assert run(data.draw(split_bytes(stream))) == expected


# --- the bound on buffered data -------------------------------------------------------


def test_line_of_exactly_the_limit_is_accepted_one_more_fails() -> None:
    line = b"data:" + b"x" * (MAX_EVENT_SIZE - 5)
    assert run([line + b"\n\n"]) == ([E(data="x" * (MAX_EVENT_SIZE - 5))], False)
    with pytest.raises(RemoteProtocolError) as info:
        SSEDecoder().feed(line + b"x\n\n")
    assert str(info.value) == f"server-sent event line or data exceeds {MAX_EVENT_SIZE} characters"


def test_long_line_trickled_in_fails_before_it_ends() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: ")
    chunk = b"x" * 65536
    for _ in range(127):  # 6 + 127 * 65536 characters: still within the limit
        assert decoder.feed(chunk) == []
    with pytest.raises(RemoteProtocolError) as info:
        decoder.feed(chunk)
    assert len(str(info.value)) < 100
    with pytest.raises(RemoteProtocolError):
        decoder.feed(b"\n\n")  # the stream stays failed
    assert decoder.feed_eof() == []  # already raised: not raised twice


def test_long_comment_line_is_bounded_too() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b":" + b"x" * 65535) == []
    for _ in range(127):
        assert decoder.feed(b"x" * 65536) == []
    with pytest.raises(RemoteProtocolError):
        decoder.feed(b"x")  # 1 + 65535 + 127 * 65536 == MAX_EVENT_SIZE characters before it


def test_data_of_one_event_is_bounded_across_lines() -> None:
    decoder = SSEDecoder()
    line = b"data:" + b"x" * (2**20 - 1) + b"\n"  # adds 2**20 characters to the data
    for _ in range(7):
        assert decoder.feed(line) == []
    with pytest.raises(RemoteProtocolError):
        decoder.feed(line)  # 7 MiB of data + a line of 1 MiB + 4


def test_limit_counts_the_pending_data_with_the_unfinished_line() -> None:
    with mock.patch.object(_sse, "MAX_EVENT_SIZE", 20):
        decoder = SSEDecoder()
        assert decoder.feed(b"data:0123456789\n") == []  # 11 characters of data
        assert decoder.feed(b"x" * 9) == []  # 11 + 9
        with pytest.raises(RemoteProtocolError):
            decoder.feed(b"x")  # 11 + 10


def test_long_line_trickled_byte_by_byte_fails_exactly_past_the_limit() -> None:
    limit = 1000
    with mock.patch.object(_sse, "MAX_EVENT_SIZE", limit):
        decoder = SSEDecoder()
        for _ in range(limit):
            assert decoder.feed(b"y") == []
        with pytest.raises(RemoteProtocolError):
            decoder.feed(b"y")


@pytest.mark.timeout(60)
def test_long_line_in_small_pieces_takes_linear_time() -> None:
    # 2**19 feeds up to a line of MAX_EVENT_SIZE characters: under a second when the pieces
    # are joined once; rejoining the pending line per feed would copy ~2 * 10**12 characters.
    decoder = SSEDecoder()
    assert decoder.feed(b"data: ") == []
    pieces = 2**19 - 1
    for _ in range(pieces):
        decoder.feed(b"z" * 16)
    assert decoder.feed(b"\n\n") == [E(data="z" * (16 * pieces))]


def test_events_before_the_overflow_are_delivered_then_the_error() -> None:
    with mock.patch.object(_sse, "MAX_EVENT_SIZE", 20):
        decoder = SSEDecoder()
        assert decoder.feed(b"data: a\n\ndata: " + b"x" * 30) == [E(data="a")]
        with pytest.raises(RemoteProtocolError):
            decoder.feed(b"")
        decoder = SSEDecoder()
        assert decoder.feed(b"data: a\n\n" + b"x" * 30 + b"\n\n") == [E(data="a")]
        with pytest.raises(RemoteProtocolError):
            decoder.feed_eof()
        # After feed_eof the decoder reads a new stream.
        assert decoder.feed(b"data: b\n\n") == [E(data="b")]


# --- ServerSentEvent ------------------------------------------------------------------


def test_event_defaults_and_frozen() -> None:
    event = ServerSentEvent()
    assert (event.event, event.data, event.id, event.retry) == ("message", "", None, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.data = "x"  # type: ignore[misc]
    assert not hasattr(event, "__dict__")


@pytest.mark.parametrize(
    ("kwargs", "error", "argument"),
    [
        ({"event": b"x"}, TypeError, "event"),
        ({"data": None}, TypeError, "data"),
        ({"id": 1}, TypeError, "id"),
        ({"id": "a\x00"}, ValueError, "id"),
        ({"retry": "5"}, TypeError, "retry"),
        ({"retry": True}, TypeError, "retry"),
        ({"retry": -1}, ValueError, "retry"),
        ({"retry": MAX_RETRY + 1}, ValueError, "retry"),
    ],
)
def test_event_validates_its_fields(
    kwargs: dict[str, object], error: type[Exception], argument: str
) -> None:
    with pytest.raises(error, match=argument):
        ServerSentEvent(**kwargs)  # type: ignore[arg-type]


def test_module_exports() -> None:
    assert sorted(_sse.__all__) == ["MAX_EVENT_SIZE", "MAX_RETRY", "SSEDecoder", "ServerSentEvent"]
