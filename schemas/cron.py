"""Cron validation without Airflow or croniter, so `pipespec check` stays light."""

from __future__ import annotations

import re

PRESETS = {"@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly", "@annually"}
_FIELDS = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {m: i + 1 for i, m in enumerate(
        "jan feb mar apr may jun jul aug sep oct nov dec".split())}),
    ("day of week", 0, 7, {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}),
)
_ITEM = re.compile(r"^(\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(\d+))?$")


def validate_cron(expr: str) -> str:
    if expr.startswith("@"):
        if expr not in PRESETS:
            raise ValueError(f"unknown cron preset; use one of {', '.join(sorted(PRESETS))}")
        return expr
    parts = expr.split()
    if len(parts) != 5:
        raise ValueError(f"a cron expression has 5 fields (minute hour day month weekday), this has {len(parts)}")
    for text, (name, low, high, names) in zip(parts, _FIELDS):
        for item in text.lower().split(","):
            _check_item(item, name, low, high, names)
    return expr


def _check_item(item: str, name: str, low: int, high: int, names: dict[str, int]) -> None:
    match = _ITEM.match(item)
    if not match:
        raise ValueError(f"`{item}` is not a valid {name} field")
    body, step = match.groups()
    if step is not None and int(step) == 0:
        raise ValueError(f"step `/0` in the {name} field")
    if body == "*":
        return
    bounds = [_value(v, name, low, high, names) for v in body.split("-")]
    if len(bounds) == 2 and bounds[0] > bounds[1]:
        raise ValueError(f"range `{body}` in the {name} field runs backwards")


def _value(text: str, name: str, low: int, high: int, names: dict[str, int]) -> int:
    if text in names:
        return names[text]
    if not text.isdigit():
        raise ValueError(f"`{text}` is not a valid {name} value")
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{name} value {value} is outside {low}-{high}")
    return value
