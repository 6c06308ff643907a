"""Argument checks shared by the layers and the configs; messages name the argument."""

from __future__ import annotations

import math
import numbers


def check_int(name: str, value, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum}, got {value!r}.")


def check_rate(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
        raise ValueError(f"`{name}` must be in [0, 1), got {value!r}.")


def check_units(name: str, units) -> tuple[int, ...]:
    try:
        units = tuple(units)
    except TypeError:
        raise ValueError(f"`{name}` must be a sequence of positive ints, got {units!r}.") from None
    if any(not isinstance(u, int) or isinstance(u, bool) or u <= 0 for u in units):
        raise ValueError(f"`{name}` must be a sequence of positive ints, got {units!r}.")
    return units


def check_positive(name: str, value) -> None:
    """A finite real number > 0 (temperatures, weights that must not vanish)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"`{name}` must be a finite number > 0, got {value!r}.")


def check_non_negative(name: str, value) -> None:
    """A finite real number >= 0 (loss weights, where 0 switches a term off)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"`{name}` must be a finite number >= 0, got {value!r}.")


def check_candidates(num_items: int, num_candidates: int | None) -> int:
    """A retriever's corpus size: `num_candidates` (default `num_items`), in `[2, num_items]`."""
    check_int("num_items", num_items, minimum=2)
    num_candidates = num_items if num_candidates is None else num_candidates
    check_int("num_candidates", num_candidates, minimum=2)
    if num_candidates > num_items:
        raise ValueError(
            f"`num_candidates` must be <= num_items, got {num_candidates} > {num_items}."
        )
    return num_candidates
