"""Pure parts of the moderation loop: the staffing watch, incident outcomes, the list of
coordinator addresses, and the emails' safety with hostile values."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from component.core import emails, validators
from component.core.outcomes import parse_outcome, shown
from component.core.staffing import Tell, Watch, step

AFTER = 600.0


def _run(states: list[tuple[float, bool, bool]]) -> list[Tell]:
    """Feed (time, in_hours, staffed) in order; the tells, NOTHING left out."""
    watch = Watch()
    told = []
    for now, in_hours, staffed in states:
        watch, tell = step(watch, in_hours=in_hours, staffed=staffed, now=now, after=AFTER)
        if tell is not Tell.NOTHING:
            told.append(tell)
    return told


def test_unstaffed_is_told_once_after_the_delay_then_staffed_once() -> None:
    assert _run([(0, True, False), (599, True, False)]) == []
    assert _run(
        [(0, True, False), (600, True, False), (1200, True, False), (5000, True, False)]
    ) == [Tell.UNSTAFFED]
    assert _run([(0, True, False), (600, True, False), (700, True, True), (701, True, True)]) == [
        Tell.UNSTAFFED,
        Tell.STAFFED,
    ]


def test_someone_back_before_the_delay_or_closing_time_tells_nobody() -> None:
    assert (
        _run([(0, True, False), (500, True, True), (900, True, False), (1400, True, False)]) == []
    )
    # Closed: no watch; the hours end while unstaffed: no "staffed" line, a fresh watch.
    assert _run([(0, False, False), (10_000, False, False)]) == []
    assert _run([(0, True, False), (600, True, False), (700, False, False), (800, True, True)]) == [
        Tell.UNSTAFFED
    ]


def test_a_spell_from_start_up_ended_by_someone_then_a_new_spell_is_told_again() -> None:
    assert _run(
        [(0, True, False), (600, True, False), (601, True, True), (602, True, False)]
        + [(602 + 600 * k, True, False) for k in range(1, 5)]
    ) == [Tell.UNSTAFFED, Tell.STAFFED, Tell.UNSTAFFED]


# Each reading the service may feed: (in_hours, staffed).
_READINGS = ((True, False), (True, True), (False, False), (False, True))


def test_nobody_is_told_twice_about_one_spell_whatever_the_readings() -> None:
    """Every sequence of five readings, each AFTER apart or at the same instant (checks
    racing): two UNSTAFFED tells always have a staffed or closed reading between them (a
    new spell), and STAFFED only ever follows an UNSTAFFED."""
    for readings in itertools.product(_READINGS, repeat=5):
        for gaps in itertools.product((0.0, AFTER - 1, AFTER), repeat=5):
            watch, now, last, spell_ended = Watch(), 0.0, Tell.STAFFED, True
            for (in_hours, staffed), gap in zip(readings, gaps, strict=True):
                now += gap
                watch, tell = step(watch, in_hours=in_hours, staffed=staffed, now=now, after=AFTER)
                if staffed or not in_hours:
                    spell_ended = True
                if tell is Tell.UNSTAFFED:
                    assert spell_ended, (readings, gaps)
                    spell_ended, last = False, tell
                elif tell is Tell.STAFFED:
                    assert last is Tell.UNSTAFFED and staffed, (readings, gaps)
                    last = tell


@pytest.mark.parametrize(
    ("code", "days", "text", "stored"),
    [
        ("no-action", "", "no action", "no-action"),
        ("warned", "", "the patron was warned", "warned"),
        ("banned", "30", "banned for 30 days", "banned:30"),
        ("banned", "1", "banned for 1 day", "banned:1"),
        ("lifted", "", "the ban was lifted", "lifted"),
        ("referred", "", "referred to a school or facility contact", "referred"),
    ],
)
def test_outcomes(code: str, days: str, text: str, stored: str) -> None:
    outcome = parse_outcome(code, days)
    assert (outcome.text(), outcome.stored(), shown(outcome.stored())) == (text, stored, text)


@pytest.mark.parametrize(
    ("code", "days"),
    [
        ("", ""),
        ("banned", ""),
        ("banned", "0"),
        ("banned", "-3"),
        ("banned", "٣٠"),  # Arabic-Indic digits
        ("banned", "9" * 400),
        ("warned", "30"),
        ("'; DROP TABLE incidents; --", ""),
        ("banned\x00", "3"),
    ],
)
def test_bad_outcomes_are_refused_with_a_sentence(code: str, days: str) -> None:
    with pytest.raises(ValueError, match=r"\.$"):
        parse_outcome(code, days)


def test_coordinator_list() -> None:
    assert validators.email_list("") == ()
    assert validators.email_list(" A@Example.ORG, b@example.org;b@EXAMPLE.org  c@example.org") == (
        "A@example.org",
        "b@example.org",
        "c@example.org",
    )
    for bad in ["a@example.org\nb@example.org", "a@example.org, nope", "<a@example.org>"]:
        with pytest.raises(ValueError):
            validators.email_list(bad)
    with pytest.raises(ValueError, match="at most 10"):
        validators.email_list(",".join(f"c{i}@example.org" for i in range(11)))


def test_hostile_values_stay_out_of_the_headers() -> None:
    now = datetime(2026, 1, 2, tzinfo=UTC)
    msg = emails.staff_notice(
        "desk@library.example",
        "coord@library.example",
        "Ban #1 on =?utf-8?q?A=0D=0AX-Evil:_1?= \r\nBcc: victim@example.org",
        "intro",
        [("Reason", "line one\r\nBcc: victim@example.org")],
        link="https://desk.example.org/admin/transcripts/1",
        now=now,
    )
    data = emails.render_bytes(msg)
    parsed = emails.parse_bytes(data)
    assert parsed["Bcc"] is None and parsed["X-Evil"] is None
    assert emails.envelope_recipients(parsed) == ["coord@library.example"]
    notice = emails.ban_notice(
        "desk@library.example",
        "patron@example.net",
        "Ask <us>\r\nBcc: x@example.org",
        category="harassing messages",
        starts="2026-01-02 00:00 UTC",
        ends=None,
        appeal_address="appeals@library.example",
        address_seen="203.0.113.45",
        now=now,
    )
    back = emails.parse_bytes(emails.render_bytes(notice))
    assert emails.envelope_recipients(back) == ["patron@example.net"]
    assert back["Bcc"] is None
    html = back.get_body(preferencelist=("html",))
    assert html is not None and "<us>" not in str(html.get_content())
