"""Validated changes to a group's or a queue's settings, as the store applies them.

Built by the directory layer (`component.directory`) after every value has passed
`component.core.validators`; the store writes the fields that are set, in one statement.
A field left at `UNSET` keeps its stored value; `None` is a value (it clears the setting).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields

from component.core.models import RoutingMode


class Unset(enum.Enum):
    """The type of `UNSET` (an enum, so type checkers narrow `x is not UNSET`)."""

    UNSET = enum.auto()


UNSET = Unset.UNSET


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupUpdate:
    """New values for some of a group's settings."""

    title: str | Unset = UNSET
    operators_may_ban: bool | Unset = UNSET
    appeal_email: str | Unset | None = UNSET
    coordinator_emails: tuple[str, ...] | Unset = UNSET
    referral_domains: str | Unset = UNSET  # comma-separated, as stored; "" for any

    def columns(self) -> dict[str, object]:
        """Column name -> value for each field that is set (called by the store):
        coordinator addresses as comma-separated text."""
        out = _set_fields(self)
        if not isinstance(self.coordinator_emails, Unset):
            out["coordinator_emails"] = ",".join(self.coordinator_emails)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueUpdate:
    """New values for some of a queue's settings."""

    title: str | Unset = UNSET
    routing: RoutingMode | Unset = UNSET
    followup_email: str | Unset | None = UNSET
    offer_timeout: float | Unset = UNSET
    rollover_after: float | Unset | None = UNSET
    backup_queue_id: int | Unset | None = UNSET
    hours: str | Unset = UNSET
    timezone: str | Unset = UNSET
    closed_days: tuple[str, ...] | Unset = UNSET
    escalation: str | Unset | None = UNSET
    referral_email: str | Unset | None = UNSET
    max_wait: float | Unset | None = UNSET
    privacy: str | Unset = UNSET
    retention_days: int | Unset | None = UNSET
    purge_transcripts: bool | Unset = UNSET
    feedback: bool | Unset = UNSET
    widget_color: str | Unset = UNSET
    widget_logo: str | Unset | None = UNSET
    greeting: str | Unset | None = UNSET
    text_available: str | Unset | None = UNSET
    text_away: str | Unset | None = UNSET
    text_offline: str | Unset | None = UNSET
    allowed_origins: str | Unset = UNSET

    def columns(self) -> dict[str, object]:
        """Column name -> stored value for each field that is set (called by the store):
        closed days as comma-separated text, the routing mode as its value, flags as 0/1."""
        out = _set_fields(self)
        if not isinstance(self.closed_days, Unset):
            out["closed_days"] = ",".join(self.closed_days)
        if not isinstance(self.routing, Unset):
            out["routing"] = RoutingMode(self.routing).value
        return out

    def changed(self) -> list[str]:
        """The names of the settings this update sets (for the CLI's summary line)."""
        return sorted(_set_fields(self))


def _set_fields(update: GroupUpdate | QueueUpdate) -> dict[str, object]:
    out: dict[str, object] = {}
    for field in fields(update):
        value = getattr(update, field.name)
        if value is UNSET:
            continue
        out[field.name] = int(value) if isinstance(value, bool) else value
    return out
