"""Serial numbers: bounds and the canonical hex text the ledger stores."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ctstatus.ledger import (
    SERIAL_LIMIT,
    InvalidSerial,
    check_serial,
    serial_from_hex,
    serial_to_hex,
)


@pytest.mark.parametrize("bad", [0, -1, -(2**64), SERIAL_LIMIT, 2**160, True, 1.0, "1"])
def test_out_of_range_or_wrong_type_is_refused(bad: object) -> None:
    with pytest.raises(InvalidSerial):
        check_serial(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("good", [1, 2**63, 2**64 + 1, SERIAL_LIMIT - 1])
def test_bounds_inclusive(good: int) -> None:
    assert check_serial(good) == good


def test_largest_serial_is_forty_hex_digits() -> None:
    assert serial_to_hex(SERIAL_LIMIT - 1) == "7" + "f" * 39


@given(st.integers(min_value=1, max_value=SERIAL_LIMIT - 1))
def test_hex_round_trip_is_canonical(serial: int) -> None:
    text = serial_to_hex(serial)
    assert text == text.lower()
    assert not text.startswith("0")
    assert not text.startswith("0x")
    assert serial_from_hex(text) == serial


@pytest.mark.parametrize(
    "text", ["", "0", "0a", "0x1a", "1A", " 1a", "1a ", "g", "-1", "8" + "0" * 39]
)
def test_non_canonical_hex_is_refused(text: str) -> None:
    with pytest.raises(InvalidSerial):
        serial_from_hex(text)
