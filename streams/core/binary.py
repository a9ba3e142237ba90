"""The few binary primitives creditline stores in Redis (the ledger, the fold, the status
history): exact, compact, and read back without a schema library.

* ``int64``, ``float64``: 8 bytes, big-endian (a float round-trips bit for bit);
* ``varint``: an unsigned integer, 7 bits per byte, low bits first, the high bit set on
  every byte but the last (``0`` to ``127`` in one byte);
* ``text``: a length byte, then ASCII (ids are at most 64 characters);
* ``money``: a decimal exactly as given (trailing zeros kept): a varint of
  ``coefficient * 2 + sign``, then the exponent as a signed byte (``2800.00`` in 4 bytes).
"""

from __future__ import annotations

import struct
from decimal import Decimal

_INT64 = struct.Struct(">q")
_FLOAT64 = struct.Struct(">d")
_EXPONENT = struct.Struct(">b")
_SMALL = [bytes((value,)) for value in range(0x80)]


def int64(value: int) -> bytes:
    """A signed 64-bit integer."""
    return _INT64.pack(value)


def float64(value: float) -> bytes:
    """A double, bit for bit."""
    return _FLOAT64.pack(value)


def varint(value: int) -> bytes:
    """An unsigned integer in as few bytes as its size needs."""
    if 0 <= value <= 0x7F:
        return _SMALL[value]  # counts, months, levels: most varints are one byte
    if value < 0:
        raise ValueError(f"a varint is unsigned: {value}")
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def text(value: str) -> bytes:
    """Short ASCII text with its length."""
    raw = value.encode("ascii")
    if len(raw) > 255:
        raise ValueError(f"stored text longer than 255 bytes: {len(raw)}")
    return bytes((len(raw),)) + raw


def money(value: Decimal) -> bytes:
    """A decimal, exactly (its sign, coefficient and exponent)."""
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int) or not -128 <= exponent <= 127:
        raise ValueError(f"stored money out of range: {value!r}")
    coefficient = 0
    for digit in digits:
        coefficient = coefficient * 10 + digit
    return varint(coefficient << 1 | sign) + _EXPONENT.pack(exponent)


class Reader:
    """A cursor over stored bytes; each method reads one primitive and moves on."""

    __slots__ = ("at", "data")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def done(self) -> bool:
        """Whether every byte has been read."""
        return self.at >= len(self.data)

    def byte(self) -> int:
        value = self.data[self.at]
        self.at += 1
        return value

    def int64(self) -> int:
        (value,) = _INT64.unpack_from(self.data, self.at)
        self.at += 8
        return int(value)

    def float64(self) -> float:
        (value,) = _FLOAT64.unpack_from(self.data, self.at)
        self.at += 8
        return float(value)

    def varint(self) -> int:
        data, value, shift = self.data, 0, 0
        while True:
            byte = data[self.at]
            self.at += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7

    def text(self) -> str:
        size = self.data[self.at]
        start = self.at + 1
        self.at = start + size
        if self.at > len(self.data):
            raise ValueError("truncated stored text")
        return self.data[start : self.at].decode("ascii")

    def money(self) -> Decimal:
        packed = self.varint()
        exponent = self.byte()
        if exponent > 127:
            exponent -= 256
        # Exact: the decimal's text from its coefficient and exponent (no context rounding).
        return Decimal(f"{'-' if packed & 1 else ''}{packed >> 1}E{exponent}")
