"""The rules for what admins type about the directory (groups, queues, operators, canned
messages, links, exempt networks, bans) and for the email addresses anyone types.

Pure: no I/O. Each function takes the text as typed and returns the value to store, or
raises `ValueError` with one sentence saying what is wrong. The directory layer
(`component.directory`) attaches the field's name; the config loader, the operator
commands, the moderation rules and the patron's email form call the same functions, so a
value is accepted or refused the same way wherever it is typed.

Email addresses are checked by the `email-validator` package (syntax only: no DNS), after
a few checks of our own that give a patron a precise sentence. Policy:

- One bare mailbox, ``local@domain``: no display name, angle brackets, comments, quoted
  local part, IP-literal domain, spaces or second address.
- Internationalised *domains* are accepted and returned in their ASCII (IDNA 2008) form,
  which every mail server understands. A domain with a character that the older IDNA 2003
  rules map to something else (``ß``, final sigma, joiners) is refused: software still on
  the old rules would send the mail to a different domain than the one typed.
- Internationalised *local parts* (``josé@...``) are refused: they only work when every
  server on the way supports SMTPUTF8, and a clear error now is better than an answer that
  silently bounces.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email

from component.core.escalation import RuleError, parse_rule
from component.core.escalation import describe as describe_rule
from component.core.hours import HoursError, format_hours, parse_hours
from component.core.models import RoutingMode
from component.core.text import CONTROL, TextRejected, clean_title, find_xml_illegal

ADDRESS_HELP = "Please enter a valid email address, like name@example.org."
# RFC 5321 limits a path to 256 octets including the angle brackets.
MAX_ADDRESS_CHARS = 254
MAX_LOCAL_CHARS = 64
MAX_TITLE = 200
MAX_DISPLAY_NAME = 100
MAX_LINK_URL = 2000
MAX_CANNED_TEXT = 2000
MAX_BAN_REASON = 500
MAX_NOTE = 200
MAX_CHATS_LIMIT = 50
# A week: longer waits and timeouts are typing mistakes.
MAX_SECONDS = 7 * 24 * 3600

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_CANNED_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
_ORIGIN = re.compile(r"https?://(\*\.)?[a-z0-9.-]+(:[0-9]{1,5})?")
# Domains only a local mail server knows: one label, or a special-use name for local use.
_LOCAL_DOMAIN = re.compile(r"([a-z0-9-]+\.)*(localhost|local|test)|[a-z0-9-]+")
# Characters IDNA 2003 and IDNA 2008 treat differently ("deviation characters").
_DEVIATIONS = frozenset("\u00df\u03c2\u200c\u200d")
# Alphabets with letters that look alike (Latin "a", Cyrillic "а", Greek "α"): one label
# mixing them is made to pass for another name, as browsers' address bars also judge.
_LOOKALIKE_ALPHABETS = frozenset({"LATIN", "CYRILLIC", "GREEK"})
MIXED_ALPHABETS = (
    "Please check the part after the @: it mixes alphabets (such as Latin and Cyrillic"
    " letters that look alike) within one name, so it is not the domain it looks like."
)


def _mixes_alphabets(domain: str) -> bool:
    """Whether a label of `domain` (Unicode form) has letters of two look-alike alphabets."""
    for label in domain.split("."):
        found = {unicodedata.name(ch, "").partition(" ")[0] for ch in label if ch.isalpha()}
        if len(found & _LOOKALIKE_ALPHABETS) > 1:
            return True
    return False


# --- email -----------------------------------------------------------------------------


def email_address(text: str) -> str:
    """One mailbox address, cleaned (trimmed, domain lower-cased and in ASCII form).

    Called for every address anyone types: a patron's (offline form, transcript), an
    admin's (queue follow-up and referral addresses, appeal address, operator alert
    address, the configured sender), an operator's (`!refer`)."""
    if "\r" in text or "\n" in text:
        # The one character a header injection needs: refused outright, even at the ends.
        raise ValueError("Please enter a single email address on one line, like name@example.org.")
    text = text.strip()
    if not text:
        raise ValueError("Please enter an email address, like name@example.org.")
    if len(text) > MAX_ADDRESS_CHARS:
        raise ValueError("That email address is too long. Please check it and try again.")
    if CONTROL.search(text) or find_xml_illegal(text):
        raise ValueError(ADDRESS_HELP)
    if any(ch in text for ch in ",;") or text.count("@") > 1:
        raise ValueError("Please enter just one email address, like name@example.org.")
    if any(ch in text for ch in '<>"()[]\\:'):
        raise ValueError(
            "Please enter just the address, like name@example.org, without a name, "
            "quotes or angle brackets."
        )
    if any(ch.isspace() for ch in text):
        raise ValueError("Please enter the address without spaces, like name@example.org.")
    local, _, domain = text.partition("@")
    if not local.isascii():
        raise ValueError(
            "Please use an address without accents or other special letters before the @."
        )
    # "=?" would start an RFC 2047 encoded word, which mail parsers decode into something
    # else: the address read back from a stored message must be the one typed.
    if len(local) > MAX_LOCAL_CHARS or "=?" in local:
        raise ValueError(ADDRESS_HELP)
    if _DEVIATIONS.intersection(domain.lower()):
        raise ValueError(
            "Please check the part after the @: it has a letter (such as ß) that some mail"
            " software reads as a different domain."
        )
    try:
        checked = validate_email(text, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        raise ValueError(ADDRESS_HELP) from None
    if _mixes_alphabets(checked.domain):
        raise ValueError(MIXED_ALPHABETS)
    result = f"{checked.local_part}@{checked.ascii_domain.lower()}"
    # An all-digit top-level label is an IP address, not a mail domain.
    if checked.ascii_domain.rsplit(".", 1)[-1].isdigit():
        raise ValueError(ADDRESS_HELP)
    if len(result) > MAX_ADDRESS_CHARS:
        raise ValueError("That email address is too long. Please check it and try again.")
    return result


def own_address(text: str) -> str:
    """An address of the service's own (its sender, its appeal address), set in the
    configuration: checked like `email_address`, except that the domain may also be a
    name only the local mail server knows (one label, or under .localhost, .local or
    .test), as on a demo or test machine. Called by the config loader."""
    local, at, domain = text.strip().rpartition("@")
    if at and _LOCAL_DOMAIN.fullmatch(domain.lower()):
        email_address(f"{local}@example.org")
        return f"{local}@{domain.lower()}"
    return email_address(text)


MAX_COORDINATORS = 10


def email_list(text: str, limit: int = MAX_COORDINATORS) -> tuple[str, ...]:
    """Addresses separated by commas or spaces (a group's coordinators), each checked
    like `email_address`, in the order given without repeats; empty text is none. Called
    by the directory for the CLI's `--coordinator-email` and the admin group form."""
    if "\r" in text or "\n" in text:
        raise ValueError("Please give the addresses on one line, separated by commas.")
    words = [w for w in re.split(r"[,;\s]+", text.strip()) if w]
    if len(words) > limit:
        raise ValueError(f"Give at most {limit} addresses.")
    out: list[str] = []
    for word in words:
        try:
            address = email_address(word)
        except ValueError as exc:
            raise ValueError(f"{word[:80]!r} is not an email address. {exc}") from None
        if address not in out:
            out.append(address)
    return tuple(out)


def optional_email(text: str) -> str | None:
    """An address, or None for an empty field (the admin forms' way to clear one)."""
    return email_address(text) if text.strip() else None


# --- names and one-line texts ------------------------------------------------------------


def name(text: str, what: str, reserved_prefix: str) -> str:
    """A queue or group name: the local part of a queue's JID and part of URLs, so plain.
    `reserved_prefix` starts the guest JIDs of chats, which a queue must never take."""
    value = text.strip()
    if not value:
        raise ValueError(f"Enter a {what} name.")
    if not _NAME.fullmatch(value) or value.startswith(reserved_prefix):
        raise ValueError(
            f"{value[:80]!r} is not a valid {what} name: use 1-63 lower-case letters, digits,"
            f" '.', '-' or '_', starting with a letter or digit, not starting with"
            f" {reserved_prefix!r}."
        )
    return value


def one_line(text: str, limit: int, what: str) -> str:
    """A required one-line text that ends up in pages and XMPP stanzas: line breaks and
    control characters are refused (XML cannot carry most of them, and the XMPP server
    closes the component's stream over one)."""
    value = text.strip()
    if not value:
        raise ValueError(f"Enter {what}.")
    if len(value) > limit or not value.isprintable() or find_xml_illegal(value):
        raise ValueError(
            f"{what[0].upper()}{what[1:]} must be 1-{limit} printable characters on one line."
        )
    return value


def optional_one_line(text: str, limit: int, what: str) -> str | None:
    """`one_line`, or None for an empty field."""
    return one_line(text, limit, what) if text.strip() else None


def optional_text(text: str, limit: int) -> str | None:
    """A text patrons see that may have several lines (greeting, widget texts); None for
    an empty field."""
    value = text.strip()
    if not value:
        return None
    if len(value) > limit or find_xml_illegal(value):
        raise ValueError(f"Use at most {limit} printable characters.")
    return value


def title(text: str) -> str:
    """A group's, queue's or link's title: one line that patrons and operators see, and
    that goes into email subjects and sender names (see `text.clean_title`)."""
    try:
        return clean_title(text, MAX_TITLE)
    except TextRejected as exc:
        raise ValueError(exc.text) from None


def display_name(text: str) -> str:
    """The name patrons see for an operator."""
    return one_line(text, MAX_DISPLAY_NAME, "the display name")


def ban_reason(text: str) -> str:
    """Why a ban was made or lifted (ban list, audit log): required, one line, at most
    `MAX_BAN_REASON` characters. Checked by the moderation rules for every ban, whoever
    asks (admin page, CLI, operator's `!ban`)."""
    value = text.strip()
    if not value:
        raise ValueError("Give a reason: it is shown in the ban list and the audit log.")
    if len(value) > MAX_BAN_REASON:
        raise ValueError(f"Keep the reason under {MAX_BAN_REASON} characters.")
    if not value.isprintable() or find_xml_illegal(value):
        raise ValueError("Write the reason on one line, without control characters.")
    return value


def canned_name(text: str) -> str:
    """What operators type after !c."""
    value = text.strip().lower()
    if not _CANNED_NAME.fullmatch(value):
        raise ValueError(
            f"{text.strip()[:60]!r} is not a valid name: use 1-40 lower-case letters, digits,"
            " '-' or '_', starting with a letter or digit (operators type it after !c)."
        )
    return value


def canned_text(text: str) -> str:
    """The text a canned message sends (may have several lines)."""
    value = text.strip()
    if not value:
        raise ValueError("Enter the text operators will send.")
    if len(value) > MAX_CANNED_TEXT or find_xml_illegal(value) or "\x00" in value:
        raise ValueError(f"Use at most {MAX_CANNED_TEXT} printable characters.")
    return value


# --- numbers, choices, addresses ---------------------------------------------------------


def seconds(text: str) -> float:
    """A positive number of seconds, at most a week."""
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(
            f"{text.strip()[:40]!r} is not a number: enter a number of seconds, e.g. 30."
        ) from None
    if not 0 < value <= MAX_SECONDS:
        raise ValueError("Enter a positive number of seconds: greater than 0 and at most a week.")
    return value


def optional_seconds(text: str) -> float | None:
    return seconds(text) if text.strip() else None


def whole(text: str, low: int, high: int, what: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"Enter a whole number of {what} from {low} to {high}.") from None
    if not low <= value <= high:
        raise ValueError(f"Enter a whole number of {what} from {low} to {high}.")
    return value


def max_chats(text: str) -> int:
    return whole(text, 1, MAX_CHATS_LIMIT, "chats")


def optional_days(text: str) -> int | None:
    return whole(text, 1, 36500, "days") if text.strip() else None


def routing(text: str) -> RoutingMode:
    try:
        return RoutingMode(text.strip())
    except ValueError:
        raise ValueError(
            "Choose how chats are offered to operators: "
            + " or ".join(m.value for m in RoutingMode)
            + "."
        ) from None


PRIVACY_MODES = ("full", "network", "none")


def privacy(text: str) -> str:
    if text not in PRIVACY_MODES:
        raise ValueError("Choose what is kept of patrons' addresses: full, network or none.")
    return text


def color(text: str) -> str:
    value = text.strip()
    if not _COLOR.fullmatch(value):
        raise ValueError("Write the colour as # and six hex digits, e.g. #0b57d0.")
    return value.lower()


def url(text: str, *schemes: str) -> str:
    """A full address with one of `schemes` (links patrons open, the widget's logo)."""
    value = text.strip()
    parts = urlsplit(value)
    if (
        parts.scheme not in schemes
        or not parts.netloc
        or len(value) > MAX_LINK_URL
        or re.search(r"[\s<>\"'\\]", value)
        or find_xml_illegal(value)
    ):
        example = f"{schemes[-1]}://example.org/page"
        raise ValueError(f"Enter a full {' or '.join(schemes)} address, e.g. {example}.")
    return value


def origins(text: str) -> str:
    """Partner sites allowed to frame the widget: '*', nothing, or origins."""
    words = text.split()
    if words == ["*"]:
        return "*"
    out: list[str] = []
    for word in words:
        origin = word.lower().rstrip("/")
        if origin == "*":
            raise ValueError("Use * alone (any site), or list the sites without it.")
        if not _ORIGIN.fullmatch(origin):
            raise ValueError(
                f"{word[:100]!r} is not a site origin: write the scheme and host only, "
                "e.g. https://library.example.org (no path)."
            )
        if origin not in out:
            out.append(origin)
    return " ".join(out)


MAX_REFERRAL_DOMAINS = 20


def referral_domains(text: str) -> tuple[str, ...]:
    """A group's allowed referral domains as typed (commas or spaces between them), each
    in its ASCII form; () for an empty field (any domain). Called by the directory layer
    for `group set --referral-domains` and the admin group page."""
    # Counted before any is checked: each check is an IDNA conversion, and a pasted list of
    # thousands would hold the event loop for seconds. Repeats (in any case) count once.
    items = list(dict.fromkeys(w.lower() for w in re.split(r"[,\s]+", text.strip()) if w))
    if len(items) > MAX_REFERRAL_DOMAINS:
        raise ValueError(f"Give at most {MAX_REFERRAL_DOMAINS} referral domains.")
    found: list[str] = []
    for item in items:
        if "@" in item or item.startswith(("*", ".")):
            raise ValueError(
                f"{item[:80]!r} is not a domain: write just the part after the @, like "
                "example.edu (its subdomains are included)."
            )
        try:
            domain = email_address(f"postmaster@{item}").partition("@")[2]
        except ValueError as exc:
            if str(exc) == MIXED_ALPHABETS:
                raise ValueError(
                    f"{item[:80]!r} mixes alphabets (such as Latin and Cyrillic letters that"
                    " look alike) within one name, so it is not the domain it looks like."
                ) from None
            raise ValueError(
                f"{item[:80]!r} is not a mail domain: write e.g. example.edu or "
                "library.example.org."
            ) from None
        if domain not in found:
            found.append(domain)
    return tuple(found)


def in_domains(address: str, domains: tuple[str, ...]) -> bool:
    """Whether a checked address (`email_address`) is at one of `domains` or a subdomain
    of one; any address when `domains` is empty. Called by `!refer`."""
    if not domains:
        return True
    domain = address.rpartition("@")[2].lower()
    return any(domain == d or domain.endswith("." + d) for d in domains)


def referral_address(address: str, domains: tuple[str, ...]) -> str:
    """A checked address (`email_address`) that referrals may go to under a group's
    referral `domains`; ValueError saying where they may go otherwise. Called by `!refer`
    for a typed address, and by the directory for a queue's configured referral address
    and for a group's new domains against its queues' addresses."""
    if not in_domains(address, domains):
        raise ValueError(
            f"{address} is not an address of this service's institution: referrals go only "
            f"to {', '.join(domains)} (and their subdomains)."
        )
    return address


def network(text: str) -> str:
    """An address or network, as the network it names (host bits cleared)."""
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        raise ValueError(
            f"{text.strip()[:100]!r} is not an IP address or network: write e.g. "
            "192.0.2.15, 192.0.2.0/24 or 2001:db8::/48."
        ) from None


def escalation(text: str) -> str | None:
    """An on-call rule in its canonical wording; None for an empty field or 'off'."""
    value = text.strip()
    if not value or value == "off":
        return None
    try:
        return describe_rule(parse_rule(value))
    except RuleError as exc:
        raise ValueError(_sentence(str(exc))) from None


def timezone(text: str) -> str:
    value = text.strip()
    try:
        parse_hours("always", value)
    except HoursError as exc:
        raise ValueError(_sentence(f"{exc}: use a name like Europe/Paris or UTC")) from None
    return value


def closed_days(text: str) -> tuple[str, ...]:
    """Dates (YYYY-MM-DD, separated by commas or spaces) a queue is closed: sorted, in
    ISO form."""
    words = re.split(r"[,\s]+", text.strip())
    try:
        parsed = parse_hours("always", "UTC", [w for w in words if w])
    except HoursError as exc:
        raise ValueError(_sentence(str(exc))) from None
    return tuple(d.isoformat() for d in sorted(parsed.closed))


def hours(text: str, tz: str) -> str:
    """Service hours in their canonical wording (in time zone `tz`, already checked)."""
    try:
        return format_hours(parse_hours(text, tz))
    except HoursError as exc:
        raise ValueError(_sentence(str(exc))) from None


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return "This value is not valid."
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."
