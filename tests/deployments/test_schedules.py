"""The schedule grammar: every good form, every bad form, and the inverse."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule, RRuleSchedule

from deployments.schedules import (
    format_interval,
    format_schedule,
    parse_schedule,
    schedule_timezone,
)
from flows.errors import ConfigError, ScheduleError


@pytest.mark.parametrize(
    ("spec", "cron"),
    [
        ("cron:0 2 * * *", "0 2 * * *"),
        ("cron:  0   2 * * *  ", "0 2 * * *"),
        ("CRON:0 2 * * *", "0 2 * * *"),
        ("cron:*/15 * * * *", "*/15 * * * *"),
        ("cron:0 0-6/2 1,15 * *", "0 0-6/2 1,15 * *"),
        ("cron:0 9 * JAN-MAR mon-fri", "0 9 * JAN-MAR mon-fri"),
        ("cron:59 23 31 12 7", "59 23 31 12 7"),
        ("cron:0 0 L * *", "0 0 L * *"),
        ("cron:0 0 * * 5#3", "0 0 * * 5#3"),
    ],
)
def test_cron_forms(spec: str, cron: str) -> None:
    parsed = parse_schedule(spec)
    assert parsed.kind == "cron"
    assert parsed.spec == f"cron:{cron}"
    prefect = parsed.to_prefect()
    assert isinstance(prefect, CronSchedule)
    assert prefect.cron == cron
    assert prefect.timezone == "UTC"


@pytest.mark.parametrize(
    ("spec", "seconds", "canonical"),
    [
        ("interval:hours=6", 21600, "interval:hours=6"),
        ("interval:hours=1,minutes=30", 5400, "interval:hours=1,minutes=30"),
        ("interval:minutes=90", 5400, "interval:hours=1,minutes=30"),
        ("interval:days=1", 86400, "interval:days=1"),
        ("interval:seconds=20", 20, "interval:seconds=20"),
        ("interval: Hours = 2 , seconds=5", 7205, "interval:hours=2,seconds=5"),
        ("interval:days=1,hours=0", 86400, "interval:days=1"),
    ],
)
def test_interval_forms(spec: str, seconds: int, canonical: str) -> None:
    parsed = parse_schedule(spec)
    assert parsed.kind == "interval"
    assert parsed.interval == timedelta(seconds=seconds)
    assert parsed.spec == canonical
    prefect = parsed.to_prefect()
    assert isinstance(prefect, IntervalSchedule)
    assert prefect.interval == timedelta(seconds=seconds)


def test_timezone_and_conversions() -> None:
    parsed = parse_schedule("cron:0 2 * * *", "Europe/Berlin")
    create = parsed.to_deployment_schedule(slug="nightly")
    assert isinstance(create, DeploymentScheduleCreate)
    assert create.schedule.timezone == "Europe/Berlin"
    assert create.active and create.slug == "nightly"
    assert parsed.to_yaml() == {"cron": "0 2 * * *", "timezone": "Europe/Berlin"}
    assert parse_schedule("interval:hours=6").to_yaml() == {"interval": 21600, "timezone": "UTC"}
    assert str(parsed) == "cron:0 2 * * *"


def _error(spec: str, timezone: str = "UTC") -> ScheduleError:
    with pytest.raises(ScheduleError) as info:
        parse_schedule(spec, timezone)
    assert isinstance(info.value, ConfigError)  # -> 422 in the facade
    assert info.value.errors, "the error names a field"
    return info.value


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("cron:61 * * * *", ["minute", "61", "0-59"]),
        ("cron:0 24 * * *", ["hour", "24", "0-23"]),
        ("cron:0 0 0 * *", ["day-of-month", "0", "1-31"]),
        ("cron:0 0 32 * *", ["day-of-month", "32"]),
        ("cron:0 0 * 13 *", ["month", "13", "1-12"]),
        ("cron:0 0 * 0 *", ["month", "0"]),
        ("cron:0 0 * * 8", ["day-of-week", "8", "0-7"]),
        ("cron:0-60 * * * *", ["minute", "60"]),
        ("cron:1,2,99 * * * *", ["minute", "99"]),
        ("cron:*/0 * * * *", ["minute", "step"]),
        ("cron:a * * * *", ["minute", "'a'"]),
        ("cron:0 0 * foo *", ["month", "'foo'"]),
        ("cron:0 0 * * funday", ["day-of-week", "'funday'"]),
        ("cron:1-2-3 * * * *", ["minute", "'1-2-3'"]),
        ("cron:0 0 * *", ["4 fields", "expected 5"]),
        ("cron:0 0 * * * *", ["6 fields", "expected 5"]),
        ("cron:", ["empty"]),
        ("cron:0 0 ,1 * *", ["day-of-month", "empty"]),
    ],
)
def test_bad_cron_names_the_field(spec: str, words: list[str]) -> None:
    err = _error(spec)
    assert err.errors[0]["field"] == "schedule"
    for word in words:
        assert word in err.message, (word, err.message)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("interval:hours=0", ["greater than zero"]),
        ("interval:seconds=0,minutes=0", ["greater than zero"]),
        ("interval:hours=-1", ["negative", "hours=-1"]),
        ("interval:minutes=-30,hours=2", ["negative", "minutes"]),
        ("interval:weeks=1", ["unknown interval unit 'weeks'", "days, hours, minutes, seconds"]),
        ("interval:fortnights=2", ["unknown interval unit"]),
        ("interval:hours", ["<unit>=<n>"]),
        ("interval:=5", ["<unit>=<n>"]),
        ("interval:hours=", ["<unit>=<n>"]),
        ("interval:hours=1.5", ["whole number"]),
        ("interval:hours=six", ["whole number"]),
        ("interval:hours=1,hours=2", ["twice"]),
        ("interval:", ["empty"]),
    ],
)
def test_bad_interval_names_the_problem(spec: str, words: list[str]) -> None:
    err = _error(spec)
    for word in words:
        assert word in err.message, (word, err.message)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("", ["empty"]),
        ("   ", ["empty"]),
        ("0 2 * * *", ["missing schedule prefix"]),
        ("hours=6", ["missing schedule prefix"]),
        (":0 2 * * *", ["missing schedule prefix"]),
        ("every:6h", ["unknown schedule prefix 'every'"]),
        ("rrule:FREQ=DAILY", ["unknown schedule prefix 'rrule'"]),
        ("crontab:0 2 * * *", ["unknown schedule prefix 'crontab'"]),
    ],
)
def test_bad_prefix_or_empty(spec: str, words: list[str]) -> None:
    err = _error(spec)
    for word in words:
        assert word in err.message, (word, err.message)


def test_bad_timezone_names_the_timezone_field() -> None:
    err = _error("cron:0 2 * * *", "Mars/Olympus_Mons")
    assert err.errors == [{"field": "timezone", "message": err.errors[0]["message"]}]
    assert "Mars/Olympus_Mons" in err.message


@pytest.mark.parametrize(
    ("schedule", "text"),
    [
        (CronSchedule(cron="0 2 * * *", timezone="UTC"), "cron:0 2 * * *"),
        (IntervalSchedule(interval=timedelta(hours=6)), "interval:hours=6"),
        (IntervalSchedule(interval=timedelta(minutes=90)), "interval:hours=1,minutes=30"),
        (IntervalSchedule(interval=timedelta(days=2, seconds=5)), "interval:days=2,seconds=5"),
        (IntervalSchedule(interval=timedelta(seconds=0.5)), "interval:seconds=0.5"),
    ],
)
def test_format_schedule(schedule: object, text: str) -> None:
    assert format_schedule(schedule) == text
    assert format_schedule(DeploymentScheduleCreate(schedule=schedule)) == text  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "spec",
    ["cron:0 2 * * *", "interval:hours=6", "interval:hours=1,minutes=30", "interval:seconds=20"],
)
def test_round_trip(spec: str) -> None:
    parsed = parse_schedule(spec)
    assert format_schedule(parsed.to_prefect()) == spec
    assert parse_schedule(format_schedule(parsed.to_prefect())) == parse_schedule(spec)


def test_format_rrule_is_shown_not_parsed() -> None:
    assert format_schedule(RRuleSchedule(rrule="FREQ=DAILY")) == "rrule:FREQ=DAILY"
    shown = format_schedule(DeploymentScheduleCreate(schedule=RRuleSchedule(rrule="FREQ=DAILY")))
    assert shown.startswith("rrule:") and "FREQ=DAILY" in shown
    with pytest.raises(ScheduleError):
        parse_schedule(shown)


def test_format_interval_accepts_seconds() -> None:
    assert format_interval(21600) == "interval:hours=6"
    with pytest.raises(ValueError):
        format_schedule(object())


@pytest.mark.parametrize(
    ("raw", "text", "timezone"),
    [
        (
            {"schedule": {"cron": "0 2 * * *", "timezone": "UTC", "day_or": True}, "active": True},
            "cron:0 2 * * *",
            "UTC",
        ),
        (
            {"interval": 21600.0, "anchor_date": "2026-01-01T00:00:00Z", "timezone": "UTC"},
            "interval:hours=6",
            "UTC",
        ),
        ({"schedule": {"interval": 5400, "timezone": None}}, "interval:hours=1,minutes=30", None),
        ({"rrule": "FREQ=DAILY"}, "rrule:FREQ=DAILY", None),
    ],
)
def test_format_schedule_json(raw: dict[str, object], text: str, timezone: str | None) -> None:
    """The Prefect API's JSON and prefect.yaml entries format like the models do."""
    assert format_schedule(raw) == text
    assert schedule_timezone(raw) == timezone
