"""The schedule grammar of a job: `cron:<5-field cron>` and `interval:<unit>=<n>[,...]`.

    cron:0 2 * * *                 every day at 02:00 (in the job's timezone)
    interval:hours=6               every 6 hours
    interval:hours=1,minutes=30    every 90 minutes

`parse_schedule` turns a string into a `JobSchedule`, which converts to Prefect's
`CronSchedule` / `IntervalSchedule` (and `DeploymentScheduleCreate`) and to the
`schedules:` entry of prefect.yaml. `format_schedule` is the inverse: it renders any
Prefect schedule (whoever created the deployment) back into the grammar.

Every bad string raises `ScheduleError` naming the problem and the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule
from pydantic import ValidationError

from flows.errors import ScheduleError

INTERVAL_UNITS = ("days", "hours", "minutes", "seconds")
_UNIT_SECONDS = {"days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}
_USAGE = "use 'cron:<minute hour day-of-month month day-of-week>' or 'interval:<unit>=<n>'"

# (name, low, high, symbolic names) for the five cron fields, in order.
_CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day-of-month", 1, 31, ()),
    (
        "month",
        1,
        12,
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    ),
    ("day-of-week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)
# Tokens croniter understands that are not plain numbers: last day ("L"), nth weekday
# ("5#3"), last weekday ("5L"). They are range-checked by croniter itself.
_CRON_SPECIAL = re.compile(r"^(l|\d+l|\d+#\d+|[a-z]{3}#\d+|[a-z]{3}l)$")


def _fail(message: str, field: str = "schedule") -> ScheduleError:
    return ScheduleError(f"{field}: {message}", errors=[{"field": field, "message": message}])


@dataclass(frozen=True)
class JobSchedule:
    """A parsed schedule string. `kind` is "cron" or "interval"."""

    kind: Literal["cron", "interval"]
    cron: str | None = None
    interval: timedelta | None = None
    timezone: str = "UTC"

    @property
    def spec(self) -> str:
        """The canonical string form, e.g. "cron:0 2 * * *" or "interval:hours=6"."""
        if self.kind == "cron":
            return f"cron:{self.cron}"
        assert self.interval is not None
        return format_interval(self.interval)

    def __str__(self) -> str:
        return self.spec

    def to_prefect(self) -> CronSchedule | IntervalSchedule:
        if self.kind == "cron":
            return CronSchedule(cron=self.cron or "", timezone=self.timezone)
        assert self.interval is not None
        return IntervalSchedule(interval=self.interval, timezone=self.timezone)

    def to_deployment_schedule(
        self, *, active: bool = True, slug: str | None = None
    ) -> DeploymentScheduleCreate:
        return DeploymentScheduleCreate(schedule=self.to_prefect(), active=active, slug=slug)

    def to_yaml(self) -> dict[str, Any]:
        """The entry for a deployment's `schedules:` list in prefect.yaml."""
        if self.kind == "cron":
            return {"cron": self.cron, "timezone": self.timezone}
        assert self.interval is not None
        seconds = self.interval.total_seconds()
        return {
            "interval": int(seconds) if seconds.is_integer() else seconds,
            "timezone": self.timezone,
        }


def parse_schedule(spec: str, timezone: str = "UTC") -> JobSchedule:
    """Parse "cron:..." or "interval:...", or raise ScheduleError naming the problem."""
    if spec is None or not str(spec).strip():
        raise _fail(f"the schedule is empty; {_USAGE}")
    text = str(spec).strip()
    tz = _check_timezone(timezone)
    prefix, sep, body = text.partition(":")
    prefix = prefix.strip().lower()
    if not sep:
        raise _fail(f"missing schedule prefix in '{text}'; {_USAGE}")
    if prefix == "cron":
        return JobSchedule(kind="cron", cron=_parse_cron(body), timezone=tz)
    if prefix == "interval":
        return JobSchedule(kind="interval", interval=_parse_interval(body), timezone=tz)
    if not prefix:
        raise _fail(f"missing schedule prefix in '{text}'; {_USAGE}")
    raise _fail(f"unknown schedule prefix '{prefix}'; {_USAGE}")


def _check_timezone(timezone: str | None) -> str:
    tz = (timezone or "UTC").strip() or "UTC"
    try:
        CronSchedule(cron="0 0 * * *", timezone=tz)
    except ValidationError:
        raise _fail(
            f"unknown timezone '{tz}'; use an IANA name such as 'UTC' or 'Europe/Berlin'",
            field="timezone",
        ) from None
    return tz


# ---------------------------------------------------------------------------- cron


def _parse_cron(body: str) -> str:
    fields = body.split()
    if not fields:
        raise _fail("cron expression is empty; expected 5 fields, e.g. 'cron:0 2 * * *'")
    if len(fields) != 5:
        raise _fail(
            f"cron expression '{body.strip()}' has {len(fields)} fields; expected 5 "
            "(minute hour day-of-month month day-of-week)"
        )
    for value, (name, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        for item in value.split(","):
            _check_cron_item(item, name, low, high, names)
    cron = " ".join(fields)
    try:
        CronSchedule(cron=cron)
    except ValidationError as exc:
        detail = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise _fail(f"invalid cron expression '{cron}': {detail}") from None
    return cron


def _check_cron_item(item: str, name: str, low: int, high: int, names: tuple[str, ...]) -> None:
    token = item.lower()
    if not token:
        raise _fail(f"cron {name} field has an empty list item")
    base, slash, step = token.partition("/")
    if slash and (not step.isdigit() or int(step) < 1):
        raise _fail(f"cron {name} field: step '/{step}' must be a whole number >= 1")
    if base in ("*", "?"):
        return
    if _CRON_SPECIAL.match(base):
        return
    ends = base.split("-")
    if len(ends) > 2 or not all(ends):
        raise _fail(f"cron {name} field: invalid value '{item}'")
    for end in ends:
        if end.isdigit():
            number = int(end)
            if not low <= number <= high:
                raise _fail(f"cron {name} field: {number} is out of range ({low}-{high})")
        elif end not in names:
            allowed = f"{low}-{high}" + (
                f" or {names[0].upper()}-{names[-1].upper()}" if names else ""
            )
            raise _fail(f"cron {name} field: invalid value '{end}' (allowed: {allowed})")


# ---------------------------------------------------------------------------- interval


def _parse_interval(body: str) -> timedelta:
    if not body.strip():
        raise _fail(
            "interval is empty; expected <unit>=<n>, e.g. 'interval:hours=6' "
            f"(units: {', '.join(INTERVAL_UNITS)})"
        )
    amounts: dict[str, int] = {}
    for part in body.split(","):
        unit, eq, raw = (s.strip() for s in part.partition("="))
        unit = unit.lower()
        if not eq or not unit or not raw:
            raise _fail(f"interval part '{part.strip()}' is not of the form <unit>=<n>")
        if unit not in INTERVAL_UNITS:
            raise _fail(f"unknown interval unit '{unit}'; use one of {', '.join(INTERVAL_UNITS)}")
        if unit in amounts:
            raise _fail(f"interval unit '{unit}' is given twice")
        amounts[unit] = _interval_amount(unit, raw)
    total = sum(_UNIT_SECONDS[u] * n for u, n in amounts.items())
    if total <= 0:
        raise _fail(f"interval must be greater than zero (got '{body.strip()}')")
    return timedelta(seconds=total)


def _interval_amount(unit: str, raw: str) -> int:
    try:
        number = int(raw)
    except ValueError:
        raise _fail(f"interval {unit}={raw}: '{raw}' is not a whole number") from None
    if number < 0:
        raise _fail(f"interval {unit}={raw}: a negative interval is not allowed")
    return number


def format_interval(interval: timedelta | float | int) -> str:
    """timedelta(hours=1, minutes=30) -> "interval:hours=1,minutes=30"."""
    seconds = interval.total_seconds() if isinstance(interval, timedelta) else float(interval)
    parts: list[str] = []
    whole, fraction = divmod(seconds, 1)
    remaining = int(whole)
    for unit in INTERVAL_UNITS:
        count, remaining = divmod(remaining, _UNIT_SECONDS[unit])
        if unit == "seconds" and fraction:
            parts.append(f"seconds={count + fraction:g}")
        elif count:
            parts.append(f"{unit}={count}")
    return "interval:" + ",".join(parts or ["seconds=0"])


def _fields(schedule: Any) -> dict[str, Any]:
    """The schedule's own fields, from a model or its JSON; unwraps a DeploymentSchedule
    ({"schedule": {...}, "active": ...}) and a prefect.yaml `schedules:` entry."""
    if isinstance(schedule, Mapping):
        inner = schedule.get("schedule")
        return dict(inner) if isinstance(inner, Mapping) else dict(schedule)
    inner = getattr(schedule, "schedule", None)
    target = inner if inner is not None else schedule
    return {k: getattr(target, k, None) for k in ("cron", "interval", "rrule", "timezone")}


def format_schedule(schedule: Any) -> str:
    """Render a Prefect schedule as a string in the job grammar.

    Cron -> "cron:0 2 * * *", Interval -> "interval:hours=6", RRule -> "rrule:<rule>".
    Accepts client or server schedule models, DeploymentSchedule(Create), their JSON
    (as the Prefect API returns it, interval in seconds) and JobSchedule.
    """
    if isinstance(schedule, JobSchedule):
        return schedule.spec
    fields = _fields(schedule)
    if fields.get("cron"):
        return f"cron:{' '.join(str(fields['cron']).split())}"
    if fields.get("interval") is not None:
        return format_interval(fields["interval"])
    if fields.get("rrule"):
        return f"rrule:{fields['rrule']}"
    raise ValueError(f"not a schedule: {schedule!r}")


def schedule_timezone(schedule: Any) -> str | None:
    """The timezone of a Prefect schedule (model or JSON), if any."""
    if isinstance(schedule, JobSchedule):
        return schedule.timezone
    timezone = _fields(schedule).get("timezone")
    return str(timezone) if timezone else None
