"""Cron step schedules: node-cron syntax (5 fields, or 6 with seconds first), always in UTC."""

from __future__ import annotations

from dataclasses import dataclass

from croniter import CroniterError, croniter


@dataclass(frozen=True, slots=True)
class CronSpec:
    """A validated cron expression; `has_seconds` when it has node-cron's leading seconds field."""

    expression: str
    has_seconds: bool = False

    def next_after(self, ts: float) -> float:
        """The next tick strictly after `ts` (epoch seconds, UTC)."""
        # A float start makes croniter compute in UTC regardless of the process's TZ.
        it = croniter(self.expression, float(ts), second_at_beginning=self.has_seconds)
        return float(it.get_next(float))


def parse_cron(expr: str) -> CronSpec:
    """Validate a cron expression as classic Motia accepts it; ValueError with a clear message."""
    if not isinstance(expr, str):
        raise ValueError(f"cron expression must be a string, not {type(expr).__name__}")
    fields = expr.split()
    # croniter would also take 7 fields (a year) and @macros; node-cron, which classic Motia
    # uses, does not, so a project that loads here also loads there.
    if len(fields) not in (5, 6):
        raise ValueError(
            f"cron expression {expr!r} has {len(fields)} fields; expected 5 "
            "(minute hour day month weekday) or 6 (second first)"
        )
    normalized = " ".join(fields)
    has_seconds = len(fields) == 6
    try:
        croniter(normalized, 0.0, second_at_beginning=has_seconds)
    except (CroniterError, ValueError, KeyError) as exc:
        raise ValueError(f"invalid cron expression {expr!r}: {exc}") from None
    return CronSpec(expression=normalized, has_seconds=has_seconds)
