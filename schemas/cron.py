"""Cron validation without Airflow or croniter, so `pipespec check` stays light."""

from __future__ import annotations

import re

# The presets Airflow's cron timetables accept (airflow.sdk.definitions.timetables._cron.CRON_PRESETS,
# plus croniter's `@annually`); tests/schemas/test_guard_limits.py renders each one.
PRESETS = {"@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly", "@annually"}
# Airflow timetables of their own, not crons: a cron timetable refuses them, and neither fits a pipeline.
UNSUPPORTED = {
    "@once": "`@once` is not supported: write `schedule: manual` and trigger the DAG once",
    "@continuous": "`@continuous` is not supported (it would rerun back to back, forever): "
                   "use a short cron such as `*/15 * * * *`, or Assets",
}
_FIELDS = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {m: i + 1 for i, m in enumerate(
        "jan feb mar apr may jun jul aug sep oct nov dec".split())}),
    ("day of week", 0, 7, {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}),
)
# ASCII only: Python's `\d` takes any Unicode digit (`*/٣`), which Airflow's cron parser refuses.
_ITEM = re.compile(r"^(\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/([0-9]+))?$")


def validate_cron(expr: str) -> str:
    """The expression, or ValueError saying which field or preset is wrong."""
    if expr.startswith("@"):
        if expr in UNSUPPORTED:
            raise ValueError(UNSUPPORTED[expr])
        if expr not in PRESETS:
            raise ValueError(f"unknown cron preset; use one of {', '.join(sorted(PRESETS))}")
        return expr
    parts = expr.split()
    if len(parts) != 5:
        raise ValueError(f"a cron expression has 5 fields (minute hour day month weekday), this has {len(parts)}")
    fields = [set().union(*(_check_item(item, name, low, high, names) for item in text.lower().split(",")))
              for text, (name, low, high, names) in zip(parts, _FIELDS)]
    _days_exist(fields[2], fields[3], weekday_restricted=parts[4] != "*")
    return expr


def _check_item(item: str, name: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    """The values `item` selects (`*/15`, `1-5`, `mon`, `10/20`), or ValueError."""
    match = _ITEM.match(item)
    if not match:
        raise ValueError(f"`{item}` is not a valid {name} field")
    body, step = match.groups()
    if step is not None and int(step) == 0:
        raise ValueError(f"step `/0` in the {name} field")
    if body == "*":
        first, last = low, high
    else:
        bounds = [_value(v, name, low, high, names) for v in body.split("-")]
        if len(bounds) == 2 and bounds[0] > bounds[1]:
            raise ValueError(f"range `{body}` in the {name} field runs backwards")
        first, last = bounds[0], bounds[-1] if len(bounds) == 2 or step is None else high
    return set(range(first, last + 1, int(step or 1)))


_LONGEST_MONTH = {1: 31, 2: 29, 3: 31, 4: 30, 5: 31, 6: 30, 7: 31, 8: 31, 9: 30, 10: 31, 11: 30, 12: 31}


def _days_exist(days: set[int], months: set[int], weekday_restricted: bool) -> None:
    # `0 0 31 2 *` parses but never fires: Airflow would load a DAG that never runs. With a weekday
    # restriction cron fires on either field, so the day of month alone cannot rule a run out.
    if not weekday_restricted and min(days) > max(_LONGEST_MONTH[m] for m in months):
        raise ValueError(f"day {min(days)} never occurs in the months this cron names, so it would never run")


def _value(text: str, name: str, low: int, high: int, names: dict[str, int]) -> int:
    if text in names:
        return names[text]
    if not text.isdigit():
        raise ValueError(f"`{text}` is not a valid {name} value")
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{name} value {value} is outside {low}-{high}")
    return value
