"""Timeout: defaults, coercion with Timeout.of, validation, immutability."""

from __future__ import annotations

import dataclasses
import math

import pytest

from acytoo_raw._exceptions import LocalProtocolError
from acytoo_raw._timeouts import DEFAULT_TIMEOUT, Timeout

PHASES = ("connect", "read", "write", "total")


def test_defaults_are_connect_10_read_60_write_10_and_no_total() -> None:
    timeout = Timeout()
    assert (timeout.connect, timeout.read, timeout.write, timeout.total) == (10.0, 60.0, 10.0, None)


def test_default_timeout_constant_equals_the_defaults() -> None:
    assert Timeout(connect=10.0, read=60.0, write=10.0, total=None) == DEFAULT_TIMEOUT


def test_of_none_gives_the_defaults() -> None:
    assert Timeout.of(None) == Timeout(connect=10.0, read=60.0, write=10.0, total=None)
    assert Timeout.of(None) is DEFAULT_TIMEOUT


@pytest.mark.parametrize("value", [5, 2.5, 0])
def test_of_a_number_sets_connect_read_write_and_leaves_total_unlimited(value: float) -> None:
    timeout = Timeout.of(value)
    assert (timeout.connect, timeout.read, timeout.write, timeout.total) == (
        value,
        value,
        value,
        None,
    )


def test_of_a_timeout_returns_that_very_object() -> None:
    custom = Timeout(connect=1, read=2, write=3, total=4)
    assert Timeout.of(custom) is custom


def test_none_for_a_phase_means_unlimited_and_is_accepted() -> None:
    timeout = Timeout(connect=None, read=None, write=None, total=None)
    assert (timeout.connect, timeout.read, timeout.write, timeout.total) == (None,) * 4


def test_zero_is_a_valid_limit() -> None:
    assert Timeout(connect=0, read=0, write=0, total=0).total == 0


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("bad", [-1, -0.001, math.nan, -math.inf])
def test_negative_or_nan_phase_is_refused_with_value_error_naming_it(
    phase: str, bad: float
) -> None:
    with pytest.raises(ValueError, match=f"Timeout.{phase}"):
        Timeout(**{phase: bad})


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("bad", [True, False, "5", b"5", [5], object()])
def test_bool_or_non_number_phase_is_refused_with_type_error_naming_it(
    phase: str, bad: object
) -> None:
    with pytest.raises(TypeError, match=f"Timeout.{phase}"):
        Timeout(**{phase: bad})  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [-1, -0.5, math.nan])
def test_of_negative_or_nan_number_is_local_protocol_error(bad: float) -> None:
    # timeout= of a call: refused typed (LocalProtocolError is also a ValueError).
    with pytest.raises(LocalProtocolError, match="timeout must be >= 0"):
        Timeout.of(bad)


@pytest.mark.parametrize("bad", [True, False, "5", b"5", {"connect": 1}, [1]])
def test_of_bool_or_non_number_is_local_protocol_error(bad: object) -> None:
    with pytest.raises(LocalProtocolError, match="timeout must be"):
        Timeout.of(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("phase", PHASES)
def test_timeout_is_frozen(phase: str) -> None:
    timeout = Timeout()
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(timeout, phase, 1.0)
    assert timeout == DEFAULT_TIMEOUT


def test_default_timeout_cannot_be_mutated_globally() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_TIMEOUT.read = 1.0  # type: ignore[misc]
    assert Timeout.of(None).read == 60.0


def test_timeout_has_no_instance_dict_so_no_stray_attributes() -> None:
    timeout = Timeout()
    assert not hasattr(timeout, "__dict__")
    with pytest.raises((AttributeError, TypeError)):
        timeout.conect = 5  # type: ignore[attr-defined]
