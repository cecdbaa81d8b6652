"""The error a bad spec value raises, and the check that raises it: every module of the
contract reports bad input the same way (the field, the value, what is allowed)."""

from __future__ import annotations

from typing import Any


class SpecError(ValueError):
    """A spec value is invalid; the message names the field, the value and what is allowed."""


def check(cond: bool, name: str, value: Any, allowed: str) -> None:
    if not cond:
        raise SpecError(f"{name}={value!r} is invalid: {allowed}")
