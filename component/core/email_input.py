"""Checks on what patrons type into the email form (offline form, transcript request).

Called by the web layer (and the service) before a ticket is created or a message built;
each refusal is a `FieldError` naming the field, with a sentence for the person who typed
it. Pure: no I/O.
"""

from __future__ import annotations

from typing import Literal

from component.core import validators
from component.core.email_text import CONTROL_IN_TEXT, MAX_NAME_CHARS
from component.core.text import TextRejected, clean_message, clean_title

ADDRESS_HELP = validators.ADDRESS_HELP
MAX_ADDRESS_CHARS = validators.MAX_ADDRESS_CHARS

Field = Literal["email", "name", "question"]


class FieldError(ValueError):
    """A form field refused, with the field's name and a sentence for the person who typed it.

    The web layer turns it into ``400 {"error": message, "field": field}``.
    """

    def __init__(self, field: Field, message: str) -> None:
        super().__init__(message)
        self.field: Field = field
        self.message = message


class AddressError(FieldError):
    """An email address refused by `validate_address`; always about the ``email`` field."""

    def __init__(self, message: str = ADDRESS_HELP) -> None:
        super().__init__("email", message)


def validate_address(text: object) -> str:
    """Check one mailbox address typed by a patron (offline form, transcript request) or an
    admin (queue follow-up and referral addresses, `!refer` targets) and return it cleaned.

    Called at the edge, before anything is stored or put in a message. A thin wrapper of
    `component.core.validators.email_address` (the one address check everywhere; its
    docstring gives the policy) that raises `AddressError`, about the ``email`` field.
    """
    if not isinstance(text, str):
        raise AddressError()
    try:
        return validators.email_address(text)
    except ValueError as exc:
        raise AddressError(str(exc)) from None


def validate_name(text: object) -> str | None:
    """Check the optional display name from the offline form; None when left empty.

    Called by the web layer before a ticket is created. The name ends up in a Reply-To
    header, so it follows the rule of every one-line text that may reach a header
    (`component.core.text.clean_title`: no line breaks or other control characters, no
    ``=?``, which starts an RFC 2047 encoded word), worded for the form; refused, not
    repaired.
    """
    if text is None:
        return None
    if not isinstance(text, str):
        raise FieldError("name", "The name must be text.")
    if "\r" in text or "\n" in text:
        raise FieldError("name", "Please write your name on one line.")
    if not text.strip():
        return None
    try:
        return clean_title(text, MAX_NAME_CHARS)
    except TextRejected as exc:
        if exc.code == "title_too_long":
            message = f"That name is too long (the limit is {MAX_NAME_CHARS} characters)."
        elif exc.code == "encoded_word":
            message = 'Your name cannot contain "=?". Please remove it.'
        else:
            message = (
                f"Your name contains a character that cannot be sent (U+{ord(exc.char):04X}). "
                "Please remove it."
            )
        raise FieldError("name", message) from None


def validate_question(text: object, max_chars: int) -> str:
    """Check the question from the offline form (or the note of a referral) and return it
    trimmed, with line endings normalised to ``\\n``.

    Called by the web layer (and the service) before a ticket is created. The rule is a
    chat message's (`component.core.text.clean_message`), with control characters other
    than newlines and tabs refused too; each refusal is a `FieldError` for the
    ``question`` field, worded for the form.
    """
    try:
        return clean_message(text, max_chars, refuse=CONTROL_IN_TEXT)
    except TextRejected as exc:
        if exc.code == "illegal_characters":
            message = (
                f"Your question contains a character that cannot be sent "
                f"(U+{ord(exc.char):04X}). Please remove it."
            )
        elif exc.code == "message_too_long":
            message = (
                f"Your question is too long ({exc.length} characters; the limit is "
                f"{max_chars}). Please shorten it."
            )
        else:
            message = "Please type your question."
        raise FieldError("question", message) from None
