"""The staff side across a restart of refdesk (the service object stopped and a new one
started on the same database and XMPP server, Prosody and ejabberd): the unstaffed-queue
watch and hand-over notes behave as if no restart had happened."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from component.directory import Directory, GroupChange
from component.runner import Refdesk
from tests.conftest import Desk, wait_for
from tests.mail_sink import MailSink
from tests.patron_client import PatronClient

COORDINATOR = "coord@library.example"
ASK = "ask@desk.localhost"


async def _restart(desk: Desk) -> None:
    """Stop refdesk (whatever it kept in memory goes with it) and start a new one."""
    await desk.refdesk.stop()
    desk.refdesk = Refdesk(desk.refdesk.config, clock=desk.clock)
    await desk.refdesk.start()
    desk.url = f"http://127.0.0.1:{desk.refdesk.port}"
    await asyncio.wait_for(desk.refdesk.adapter.online.wait(), 30)


async def _coordinator(desk: Desk) -> None:
    directory = Directory.for_service(desk.service)
    group = await directory.group_named("library")
    await directory.change_group(group, GroupChange(coordinator_emails=COORDINATOR))


async def _alert_the_coordinator(desk: Desk, mail_sink: MailSink) -> None:
    """Begin an unstaffed spell after the coordinator is named, and wait for its alert.

    The desk starts with nobody online, which is a spell of its own: on a loaded machine
    its alert (one second here) can go out before the test names anyone, to nobody, and
    the watch rightly never repeats it. So an operator comes online first (ending that
    spell), the coordinator is named, and the operator's leaving begins the spell the
    test is about."""
    ana = await desk.add_operator(("ask", "other"), name="Ana")
    await desk.refdesk.adapter.drained()
    await _coordinator(desk)
    desk.clients.remove(ana)
    await ana.disconnect()
    await wait_for(lambda: bool(_about_ask(mail_sink, "nobody")), what="the unstaffed alert")


def _about_ask(sink: MailSink, word: str) -> list[str]:
    subjects = [str(m.message["Subject"]) for m in sink.to(COORDINATOR)]
    return [s for s in subjects if "(ask)" in s and word in s]


async def _past_the_delay(desk: Desk) -> None:
    """Let the new service's watch run for longer than `unstaffed_alert_after` from now,
    then have it look again: an alert it was going to send is sent by then."""
    await desk.service.notices.check_staffing()
    after = desk.refdesk.config.chat.unstaffed_alert_after
    start = desk.clock.monotonic()
    await wait_for(lambda: desk.clock.monotonic() - start > after, what="the alert delay")
    await desk.service.notices.check_staffing()
    await desk.service.idle()


@pytest.mark.chat_config(unstaffed_alert_after=1.0)
async def test_an_unstaffed_alert_sent_before_a_restart_is_not_sent_again(
    desk: Desk, mail_sink: MailSink
) -> None:
    await _alert_the_coordinator(desk, mail_sink)
    await _restart(desk)
    await _past_the_delay(desk)
    assert len(_about_ask(mail_sink, "nobody")) == 1
    # The watch carried on: someone coming online is the "staffed again" notice.
    await desk.add_operator(("ask",), name="Ana")
    await wait_for(lambda: bool(_about_ask(mail_sink, "staffed again")), what="staffed mail")
    assert len(_about_ask(mail_sink, "nobody")) == 1


@pytest.mark.chat_config(unstaffed_alert_after=1.0)
async def test_a_queue_unstaffed_at_start_up_is_watched_from_start_up(
    desk: Desk, mail_sink: MailSink
) -> None:
    """Staffed when refdesk stopped, nobody there when it starts: no presence ever comes,
    and the coordinator is told all the same (once)."""
    # Named only once Ana's presence is fully handled: until then the queue is in the
    # start-up spell of the first refdesk, whose alert (one second here) a slow log-in
    # on a loaded machine would let through, and this test is about the second start.
    ana = await desk.add_operator(("ask", "other"), name="Ana")
    await desk.refdesk.adapter.drained()
    await _coordinator(desk)
    await desk.refdesk.stop()
    desk.clients.remove(ana)
    await ana.disconnect()
    desk.refdesk = Refdesk(desk.refdesk.config, clock=desk.clock)
    await desk.refdesk.start()
    await asyncio.wait_for(desk.refdesk.adapter.online.wait(), 30)
    await wait_for(lambda: bool(_about_ask(mail_sink, "nobody")), what="the unstaffed alert")
    await _past_the_delay(desk)
    assert len(_about_ask(mail_sink, "nobody")) == 1
    assert _about_ask(mail_sink, "staffed") == []


# A Monday and the Tuesday after it, inside the hours "Mon-Fri 09:00-17:00" (UTC).
MONDAY = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
TUESDAY = MONDAY + timedelta(days=1)


@pytest.mark.chat_config(unstaffed_alert_after=1.0)
async def test_an_alert_from_before_a_closing_does_not_silence_the_next_opening(
    desk: Desk, mail_sink: MailSink
) -> None:
    """The queue closed after the alert (which ends the watch without a "staffed" notice):
    after a restart the next day, nobody there is a new alert."""
    desk.clock.set(MONDAY)
    await desk.set_queue("ask", hours="Mon-Fri 09:00-17:00")
    await _alert_the_coordinator(desk, mail_sink)
    desk.clock.set(TUESDAY)
    await _restart(desk)
    await wait_for(
        lambda: len(_about_ask(mail_sink, "nobody")) == 2, what="the alert of the new day"
    )


async def test_a_handover_note_written_before_a_restart_goes_to_the_next_operator(
    desk: Desk,
) -> None:
    ana = await desk.add_operator(("ask",), name="Ana")
    kept = await ana.expect_next_from(ASK, "!handover The scanner on floor 3 needs paper.")
    assert "Hand-over note kept" in kept["body"]
    desk.clients.remove(ana)
    await ana.disconnect()

    await _restart(desk)
    # The author coming back first does not use it up.
    await ana.connect()
    desk.clients.append(ana)
    await wait_for(lambda: desk.service.presence_of(ana.bare_jid).online, what="Ana back")
    ana.send_message(ASK, "!handover")
    # (Before the answer, maybe the line about her leaving the queue unstaffed, kept for her
    # by the server if the old refdesk saw her go before it stopped.)
    shown = await ana.next_message(ASK)
    while "Hand-over note from" not in shown["body"]:
        assert "last one available" in shown["body"], shown["body"]
        shown = await ana.next_message(ASK)
    assert "not given to anyone yet" in shown["body"]
    ben = await desk.add_operator(("ask",), name="Ben")
    note = await ben.next_message(ASK)
    assert "Hand-over note for Ask us (ask) from Ana" in note["body"]
    assert "The scanner on floor 3 needs paper." in note["body"]


async def test_a_transcript_copy_asked_for_before_a_restart_keeps_the_patrons_language(
    desk: Desk, mail_sink: MailSink
) -> None:
    """The copy's language is stored with its request: the patron's page is gone before a
    restart and never comes back, and the copy, sent when the operator ends the chat
    after the restart, is in Spanish all the same (it used to be kept in memory only)."""
    op = await desk.add_operator(("ask",), name="Ana")
    patron = PatronClient(desk.url, "ask")
    patron.lang = "es"
    desk.patrons.append(patron)
    await patron.connect()
    await patron.say("¿Hay salas de estudio?")
    offer = await op.next_message()
    while "salas de estudio" not in offer["body"]:
        offer = await op.next_message()
    guest = offer["from"].bare
    op.send_message(guest, "Yes, on floor 2.")
    await patron.next("message", lambda f: f["from"] == "operator")
    await patron.send({"type": "transcript", "email": "lectora@example.net", "lang": "es"})
    await patron.next("transcript_ok")
    await patron.drop()

    await _restart(desk)
    op.send_message(guest, "!end")
    await wait_for(lambda: bool(mail_sink.to("lectora@example.net")), what="the copy")
    (copy,) = mail_sink.to("lectora@example.net")
    assert copy.message["Subject"] == "Su chat con Ask us (ask)"
    assert "] Usted: ¿Hay salas de estudio?" in copy.text()
    assert "] Ana: Yes, on floor 2." in copy.text()


async def test_a_handover_note_is_not_given_to_a_colleague_online_all_along_a_restart(
    desk: Desk,
) -> None:
    """After a restart refdesk finds the operators already online by probing them. Those
    answers are not shifts starting: the note waits for the next colleague who logs in."""
    ana = await desk.add_operator(("ask",), name="Ana")
    ben = await desk.add_operator(("ask",), name="Ben")
    kept = await ana.expect_next_from(ASK, "!handover Printer 2 is jammed.")
    assert "Hand-over note kept" in kept["body"]

    await _restart(desk)
    for op in (ana, ben):
        await wait_for(
            lambda op=op: desk.service.presence_of(op.bare_jid).online,  # type: ignore[misc]
            what=f"{op.bare_jid} found online again",
        )
    await desk.refdesk.adapter.drained()
    cal = await desk.add_operator(("ask",), name="Cal")
    note = await cal.next_message(ASK)
    assert "Hand-over note for Ask us (ask) from Ana" in note["body"]
    # One note, given once: to Cal, the first to start a shift after it was written.
    queue = await desk.store_queue("ask")
    stored = await desk.refdesk.store.handover.note(queue.id)
    assert stored is not None and stored.delivered_to == cal.bare_jid
