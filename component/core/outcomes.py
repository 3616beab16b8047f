"""What was done about an incident, as chosen when an admin closes it: the outcome that
the reporting operator and the group's coordinators are told.

Pure: the admin page passes the form's words here and gets a validated `Outcome` or a
`ValueError` with a sentence for the form."""

from __future__ import annotations

from dataclasses import dataclass

# Outcome code -> how it reads in a notice ("banned" takes its number of days).
OUTCOMES: dict[str, str] = {
    "no-action": "no action",
    "warned": "the patron was warned",
    "banned": "banned",
    "lifted": "the ban was lifted",
    "referred": "referred to a school or facility contact",
}
MAX_BAN_DAYS = 3650


@dataclass(frozen=True, slots=True)
class Outcome:
    code: str
    days: int | None = None

    def text(self) -> str:
        """The outcome as one phrase for notices and the admin page."""
        if self.code == "banned":
            return f"banned for {self.days} day{'s' if self.days != 1 else ''}"
        return OUTCOMES[self.code]

    def stored(self) -> str:
        """How the incident keeps it ('banned:30', 'warned'...)."""
        return f"banned:{self.days}" if self.code == "banned" else self.code


def parse_outcome(code: str, days: str = "") -> Outcome:
    """The outcome from the close form's choice and, for "banned", its number of days.
    Called by the notices desk for the admin page's close action."""
    code = code.strip()
    if code not in OUTCOMES:
        raise ValueError("Choose an outcome: " + ", ".join(f"'{c}'" for c in OUTCOMES) + ".")
    if code != "banned":
        if days.strip():
            raise ValueError("Only a ban has a number of days.")
        return Outcome(code)
    text = days.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 5:
        raise ValueError(f"Give the ban's length as a whole number of days (1 to {MAX_BAN_DAYS}).")
    n = int(text)
    if not 1 <= n <= MAX_BAN_DAYS:
        raise ValueError(f"Give the ban's length as a whole number of days (1 to {MAX_BAN_DAYS}).")
    return Outcome(code, n)


def shown(stored: str | None) -> str | None:
    """A stored outcome ('banned:30') as its phrase, for the admin page."""
    if not stored:
        return None
    code, _, days = stored.partition(":")
    if code not in OUTCOMES:
        return stored
    return Outcome(code, int(days) if days.isdigit() else None).text()
