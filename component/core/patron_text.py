"""Lines the service itself writes to patrons, as codes with parameters.

The widget renders each line from its own catalog (`widget/strings.js`) in the patron's
language; the English rendering here is what the transcript stores, operators read and
old widgets fall back to. Texts admins write (greetings, away texts, the ban message) are
not codes: they are shown as written.

Called by the chat lifecycle, routing, operator commands and the follow-up desk whenever
they tell a patron something; pure (no I/O).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from string import Formatter
from types import MappingProxyType

# Every code the service may send, with its English text. `widget/strings.js` holds the
# same codes under `sys` for each language; a test checks they agree.
ENGLISH: Mapping[str, str] = MappingProxyType(
    {
        "joined": "{name} joined the chat.",
        "operator_left": (
            "{name} had to leave. We are finding another librarian for you; "
            "please stay in the chat."
        ),
        "transfer_to": "You are being transferred to {to}. Please stay in the chat.",
        "transferring": "You are being transferred; please stay in the chat.",
        "rolled_over": (
            "Nobody was free in {from}; your question is now with {to}. Please stay in the chat."
        ),
        "ended_by_operator": "{name} ended the chat.",
        "ended_by_patron": "You ended the chat.",
        "patron_left": "The patron left the chat (no connection for {minutes} min).",
        "followed_up": (
            "Your question was sent by email (ticket #{ticket}); we will answer you there."
        ),
        "referred_to_email": (
            "Your question has been referred to a specialist by email; "
            "they will write to you at {email}."
        ),
        "referred": (
            "Your question has been referred to a specialist by email. If you want an "
            "answer by email, ask for a transcript copy with your address."
        ),
        "wait_offer": (
            "Sorry for the wait. If you prefer, leave your question and your email "
            "address and we will answer by email; or keep waiting here."
        ),
    }
)


def placeholders(template: str) -> frozenset[str]:
    """The `{name}` fields of a template (used here and by the catalog test)."""
    return frozenset(name for _, name, _, _ in Formatter().parse(template) if name)


@dataclass(frozen=True, slots=True)
class PatronText:
    """One line for the patron: a code from `ENGLISH` and the values of its fields."""

    code: str
    params: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A typo in a code or a field would show the patron a raw code: fail at once.
        template = ENGLISH[self.code]
        if placeholders(template) != set(self.params):
            raise ValueError(f"{self.code} needs {sorted(placeholders(template))}")

    @property
    def english(self) -> str:
        """The line in English, as stored in the transcript. Values are inserted as they
        are: braces in a name are never read as fields."""
        return ENGLISH[self.code].format_map(self.params)


def line(code: str, **params: object) -> PatronText:
    """A patron line, e.g. `line("joined", name=op.name)`."""
    return PatronText(code, {k: str(v) for k, v in params.items()})


__all__ = ["ENGLISH", "PatronText", "line", "placeholders"]
