import time
from datetime import UTC, datetime

import pytest
from cfp.domain.cron import parse_cron


def ts(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def test_five_fields_next_tick_in_utc():
    spec = parse_cron("30 2 * * *")

    assert spec.has_seconds is False
    assert spec.next_after(ts(2024, 1, 1, 0, 0)) == ts(2024, 1, 1, 2, 30)
    assert spec.next_after(ts(2024, 1, 1, 2, 30)) == ts(2024, 1, 2, 2, 30)  # strictly after


def test_six_fields_put_seconds_first_like_node_cron():
    spec = parse_cron("15 */10 * * * *")

    assert spec.has_seconds is True
    assert spec.next_after(ts(2024, 3, 1, 12, 0, 0)) == ts(2024, 3, 1, 12, 0, 15)
    assert spec.next_after(ts(2024, 3, 1, 12, 0, 15)) == ts(2024, 3, 1, 12, 10, 15)


def test_every_n_seconds():
    spec = parse_cron("*/10 * * * * *")

    assert spec.next_after(ts(2024, 3, 1, 12, 0, 5)) == ts(2024, 3, 1, 12, 0, 10)
    assert spec.next_after(ts(2024, 3, 1, 12, 0, 5) + 0.5) == ts(2024, 3, 1, 12, 0, 10)


def test_fractional_start_just_before_a_tick():
    assert parse_cron("* * * * *").next_after(ts(2024, 1, 1, 0, 0, 59) + 0.9) == ts(
        2024, 1, 1, 0, 1
    )


def test_names_and_weekday_seven_are_accepted():
    monday = ts(2024, 1, 1)  # a Monday
    assert parse_cron("0 9 * * MON").next_after(monday) == ts(2024, 1, 1, 9)
    assert parse_cron("0 0 * * 7").next_after(monday) == ts(2024, 1, 7)  # 7 is Sunday


def test_process_timezone_does_not_matter(monkeypatch):
    spec = parse_cron("0 9 * * *")
    expected = ts(2024, 6, 1, 9)
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert spec.next_after(ts(2024, 6, 1, 0)) == expected
    finally:
        monkeypatch.undo()
        time.tzset()


def test_expression_whitespace_is_normalized():
    assert parse_cron("  0   3 * * *  ").expression == "0 3 * * *"


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("* * * *", "has 4 fields"),
        ("0 0 0 * * * 2030", "has 7 fields"),
        ("@daily", "has 1 fields"),
        ("", "has 0 fields"),
        ("61 * * * *", "invalid cron expression"),
        ("0 25 * * *", "invalid cron expression"),
        ("61 * * * * *", "invalid cron expression"),  # seconds come first
        ("every minute * * *", "invalid cron expression"),
    ],
)
def test_bad_expressions_are_refused(expr, message):
    with pytest.raises(ValueError, match=message):
        parse_cron(expr)


def test_non_string_is_refused():
    with pytest.raises(ValueError, match="must be a string"):
        parse_cron(5)  # type: ignore[arg-type]
