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


# The patron's languages: the widget's (`widget/strings.js`), English first (the default
# for anything else a page may say it is).
LANGUAGES = ("en", "es")

# The same lines in Spanish, as `widget/strings.js` has them under `es.sys` (a test checks
# they agree): the transcript copy emailed to a Spanish-speaking patron renders them so.
SPANISH: Mapping[str, str] = MappingProxyType(
    {
        "joined": "{name} se unió al chat.",
        "operator_left": (
            "{name} tuvo que irse. Estamos buscando a otra persona de la biblioteca para "
            "atenderle; no salga del chat, por favor."
        ),
        "transfer_to": "Le estamos transfiriendo a {to}. No salga del chat, por favor.",
        "transferring": "Le estamos transfiriendo; no salga del chat, por favor.",
        "rolled_over": (
            "No había nadie libre en {from}; su pregunta está ahora en {to}. No salga del "
            "chat, por favor."
        ),
        "ended_by_operator": "{name} terminó el chat.",
        "ended_by_patron": "Usted terminó el chat.",
        "patron_left": "El chat se cerró porque la conexión estuvo cortada {minutes} min.",
        "followed_up": (
            "Su pregunta se envió por correo electrónico (consulta n.º {ticket}); le "
            "responderemos allí."
        ),
        "referred_to_email": (
            "Su pregunta se ha remitido por correo electrónico a un especialista, que le "
            "escribirá a {email}."
        ),
        "referred": (
            "Su pregunta se ha remitido por correo electrónico a un especialista. Si quiere "
            "una respuesta por correo, pida una copia del chat con su dirección."
        ),
        "wait_offer": (
            "Perdone la espera. Si lo prefiere, deje su pregunta y su correo electrónico y le "
            "responderemos por correo; o siga esperando aquí."
        ),
    }
)

_LINES: Mapping[str, Mapping[str, str]] = MappingProxyType({"en": ENGLISH, "es": SPANISH})

# The transcript copy's own wording (subject, headings, the patron's name in it, footer),
# per language. Operators' and patrons' lines are never translated.
TRANSCRIPT_MAIL: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "en": MappingProxyType(
            {
                "subject": "Your chat with {title}",
                "intro": "Here is a copy of your chat with {title}, as you asked.",
                "heading": "Your chat",
                "times": "(times in {zone})",
                "you": "You",
                "corrected": "{who} (corrected)",
                "footer": (
                    "You received this email because a copy of this chat was requested for "
                    "this address. If that was not you, you can ignore it."
                ),
            }
        ),
        "es": MappingProxyType(
            {
                "subject": "Su chat con {title}",
                "intro": "Aquí tiene una copia de su chat con {title}, como pidió.",
                "heading": "Su chat",
                "times": "(horas en {zone})",
                "you": "Usted",
                "corrected": "{who} (corregido)",
                "footer": (
                    "Recibe este correo porque se pidió una copia de este chat para esta "
                    "dirección. Si no fue usted, puede ignorarlo."
                ),
            }
        ),
    }
)


def language(value: object) -> str:
    """The patron's language from what a widget said (`es`, `es-MX`, `ES`): one of
    `LANGUAGES`, English for anything else (an old widget says nothing; a hostile one may
    say anything). Called by the follow-up desk for a transcript request."""
    if isinstance(value, str) and len(value) <= 35:
        primary = value.split("-", 1)[0].strip().lower()
        if primary in LANGUAGES:
            return primary
    return "en"


def rendered(code: str | None, params: Mapping[str, str] | None, lang: str, text: str) -> str:
    """A stored line in `lang`: a service line (with its code) from the catalogue, any
    other line (`text`, as written) unchanged. Called for the patron's transcript copy."""
    template = _LINES.get(lang, ENGLISH).get(code or "")
    if template is None or params is None or placeholders(template) != set(params):
        return text
    return template.format_map(params)


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


__all__ = [
    "ENGLISH",
    "LANGUAGES",
    "SPANISH",
    "TRANSCRIPT_MAIL",
    "PatronText",
    "language",
    "line",
    "placeholders",
    "rendered",
]
