"""Single-precision arithmetic where Plano's analyzer uses it, so thresholds and emitted numbers agree.

Plano keeps every ratio, confidence and score as an `f32`.  That matters in
three places:

- a threshold test is `f32(ratio) >= f32(threshold)`: a double just below
  0.65 can round to the same `f32` as 0.65 and pass in Plano.  `at_least`
  and `above` give Plano's answer, and only convert when the double is
  within 1e-6 of the threshold (rounding is monotonic, so farther away the
  double comparison already agrees), which keeps the hot similarity loop on
  plain floats;
- a span attribute is the `f32` widened to a double: a confidence of 0.8 is
  exported as 0.800000011920929, so `f32` rounds before emitting;
- `signal.metadata` is JSON written by serde_json, which widens the `f32`
  and prints the double ("0.4444444477558136"); `json_f32` writes it so.
"""

from __future__ import annotations

import struct

_SINGLE = struct.Struct("<f")
_NEAR = 1e-6


def f32(value: float) -> float:
    """`value` rounded to the nearest single-precision float (ties to even), as a Python float."""
    return float(_SINGLE.unpack(_SINGLE.pack(value))[0])


def at_least(value: float, threshold: float) -> bool:
    """Plano's `value as f32 >= threshold as f32`."""
    if abs(value - threshold) > _NEAR:
        return value >= threshold
    return f32(value) >= f32(threshold)


def above(value: float, threshold: float) -> bool:
    """Plano's `value as f32 > threshold as f32`."""
    if abs(value - threshold) > _NEAR:
        return value > threshold
    return f32(value) > f32(threshold)


def json_f32(value: float) -> str:
    """`value` (an `f32`) as it appears in Plano's metadata JSON.

    serde_json widens an `f32` to a double when it builds a JSON value, and
    prints that double in its shortest round-trip form: 0.8 becomes
    "0.800000011920929".  Python's `repr` finds the same digits; only the
    layout differs for very large or small numbers, where serde_json writes
    "1e-7" and plain decimals down to 1e-5 ("0.00001", not "1e-05").
    """
    single = f32(value)
    text = repr(single)
    if "e" not in text:
        return text
    mantissa, _, exponent = text.partition("e")
    sign = "-" if mantissa.startswith("-") else ""
    whole, _, fraction = mantissa.lstrip("-").partition(".")
    digits = (whole + fraction).rstrip("0") or "0"
    point = int(exponent) + len(whole)  # digits[:point] is the integral part
    if point - len(digits) >= 0 and point <= 16:
        return f"{sign}{digits}{'0' * (point - len(digits))}.0"
    if 0 < point <= 16:
        return f"{sign}{digits[:point]}.{digits[point:]}"
    if -5 < point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    head = digits[0] if len(digits) == 1 else f"{digits[0]}.{digits[1:]}"
    return f"{sign}{head}e{point - 1}"
