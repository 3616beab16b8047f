"""The moderation loop end to end: coordinators told of bans, lifts and incidents, ban
notices to the address a banned patron gave, incident outcomes, and queues left unstaffed
during their service hours. Real XMPP servers (both), a real SMTP server, Chromium for the
admin page.

Patrons' addresses are set with X-Forwarded-For from loopback, a trusted proxy here."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from component.config import LimitsConfig
from component.directory import Directory, GroupChange, OperatorChange
from tests.conftest import Desk, admin_account, admin_page, wait_for
from tests.mail_sink import MailSink
from tests.patron_client import ProxiedPatron
from tests.test_directory_parity import admin_session, cli_config, run_cli

TRUSTED = pytest.mark.desk_config(trusted_proxies=("127.0.0.1",))
PATRON_IP = "203.0.113.45"
COORDINATORS = ("coord@library.example", "head@library.example")
QUEUE_JID = "ask@desk.localhost"


async def _coordinators(desk: Desk) -> None:
    """Set the group's coordinators the way the admin page and the CLI do."""
    directory = Directory.for_service(desk.service)
    group = await directory.group_named("library")
    await directory.change_group(group, GroupChange(coordinator_emails=", ".join(COORDINATORS)))


async def _patron(desk: Desk, ip: str = PATRON_IP) -> ProxiedPatron:
    patron = ProxiedPatron(desk.url, "ask", ip)
    desk.patrons.append(patron)
    await patron.connect()
    return patron


async def _accepted(op: Any, patron: ProxiedPatron, text: str) -> str:
    """The patron asks; the operator takes the offer. Returns the guest JID."""
    await patron.say(text)
    offer = await op.next_message()
    guest = str(offer["from"].bare)
    op.send_message(guest, "!accept")
    await op.next_message(guest)
    return guest


def _subjects(sink: MailSink, to: str) -> list[str]:
    return [str(m.message["Subject"]) for m in sink.to(to)]


@TRUSTED
async def test_ban_and_lift_tell_coordinators_and_the_patron_who_gave_an_address(
    desk: Desk, mail_sink: MailSink
) -> None:
    await _coordinators(desk)
    op = await desk.add_operator(name="Ana")
    patron = await _patron(desk)
    guest = await _accepted(op, patron, "something nasty")
    await patron.send({"type": "transcript", "email": "patron@example.net"})
    assert (await patron.next("transcript_ok"))["email"] == "patron@example.net"

    op.send_message(guest, "!tag harassment")
    assert "Incident report" in (await op.next_message(guest))["body"]
    # The incident report reaches every coordinator.
    await wait_for(
        lambda: all(any("Incident #" in s for s in _subjects(mail_sink, c)) for c in COORDINATORS),
        what="incident mails to the coordinators",
    )
    op.send_message(guest, "!ban 30d private words: called the librarian names again")
    assert f"Banned {PATRON_IP}/32" in (await op.next_message(guest))["body"]

    await wait_for(
        lambda: (
            all(any("Ban #" in s for s in _subjects(mail_sink, c)) for c in COORDINATORS)
            and bool(mail_sink.to("patron@example.net"))
        ),
        what="ban mails",
    )
    ban = (await desk.refdesk.store.bans.all())[0]
    staff = next(m for m in mail_sink.to(COORDINATORS[0]) if "Ban #" in str(m.message["Subject"]))
    text = staff.text()
    assert "Ana" in text and f"{PATRON_IP}/32" in text and "30 days" in text
    assert "called the librarian names again" in text  # staff read the operator's reason
    assert f"http://127.0.0.1:8080/admin/transcripts/{patron.chat_id}" in text

    # The patron's notice: category, dates, appeal address and their address; never the
    # operator's own words; and no transcript copy for a banned patron.
    [notice] = mail_sink.to("patron@example.net")
    body = notice.text()
    assert "harassing messages" in body
    assert "called the librarian names" not in body and "private words" not in body
    assert PATRON_IP in body and "appeals@library.example" in body
    assert f"{ban.starts_at:%Y-%m-%d}" in body and ban.ends_at is not None
    assert f"{ban.ends_at:%Y-%m-%d}" in body
    assert notice.message["Reply-To"].addresses[0].addr_spec == "appeals@library.example"

    # Lifted on the running service: the coordinators hear that too.
    await desk.service.moderation.lift(PATRON_IP, actor="boss", detail="appeal upheld")
    await wait_for(
        lambda: all(any("lifted" in s for s in _subjects(mail_sink, c)) for c in COORDINATORS),
        what="lift mails",
    )
    lift = next(m for m in mail_sink.to(COORDINATORS[1]) if "lifted" in str(m.message["Subject"]))
    assert "boss" in lift.text() and "appeal upheld" in lift.text()

    trail = await desk.refdesk.store.notices.for_ban(ban.id)
    assert sorted((n.purpose, n.recipient) for n in trail) == sorted(
        [("ban", c) for c in COORDINATORS]
        + [("lift", c) for c in COORDINATORS]
        + [("ban-notice", "patron@example.net")]
    )


@TRUSTED
async def test_no_ban_notice_to_an_address_given_in_another_chat_or_typed_by_staff(
    desk: Desk, mail_sink: MailSink
) -> None:
    """An attacker gives a victim's address in a chat of their own, from the network that
    is then banned for another chat; and the operator refers the banned chat to an address
    they type. Neither address gave the banned chat anything: no ban notice goes out."""
    await desk.set_queue("ask", followup_email="followup@library.example")
    op = await desk.add_operator(name="Ana", max_chats=5)
    attacker = await _patron(desk)
    await attacker.say("hello")
    await op.next_message()  # the attacker's offer, left waiting
    await attacker.send({"type": "transcript", "email": "victim@example.org"})
    assert (await attacker.next("transcript_ok"))["email"] == "victim@example.org"

    banned = await _patron(desk)  # the same network address
    guest = await _accepted(op, banned, "something nasty")
    op.send_message(guest, "!refer specialist@example.org")
    assert "Referred to specialist@example.org" in (await op.next_message(guest))["body"]
    op.send_message(guest, "!ban 30d abuse")
    assert "Banned" in (await op.next_message(guest))["body"]
    await attacker.seen("banned")
    ban = (await desk.refdesk.store.bans.all())[0]
    await desk.service.idle()
    await mail_sink.wait_for(1)  # the referral
    assert not any("suspended" in str(m.message["Subject"]) for m in mail_sink.received)
    assert [n.purpose for n in await desk.refdesk.store.notices.for_ban(ban.id)] == []


async def test_incident_outcome_reaches_the_reporter_and_coordinators(
    desk: Desk, mail_sink: MailSink, browser: Any
) -> None:
    await _coordinators(desk)
    op = await desk.add_operator(name="Ana")
    directory = Directory.for_service(desk.service)
    await directory.save_operator(
        OperatorChange(op.bare_jid, ("ask",), email="ana@library.example")
    )
    patron = await desk.patron()
    guest = await _accepted(op, patron, "explicit stuff I will not repeat")
    op.send_message(guest, "!tag explicit")
    assert "Incident report" in (await op.next_message(guest))["body"]
    await wait_for(lambda: bool(mail_sink.to(COORDINATORS[0])), what="incident mail")
    report = mail_sink.to(COORDINATORS[0])[0]
    # Explicit content is described, never quoted.
    assert "explicit" in report.text() and "will not repeat" not in report.text()
    [incident] = [i for i in await desk.refdesk.store.incidents.all() if i.kind == "tagged"]

    user, password = await admin_account(desk)
    page = await admin_page(browser, desk, user, password)
    try:
        from playwright.async_api import expect

        await page.goto(f"{desk.url}/admin/incidents/{incident.id}")
        trail = page.get_by_role("region", name="Notifications sent")
        await expect(trail).to_contain_text(COORDINATORS[1])
        await page.get_by_label("Resolution").fill("Banned after review.")
        await page.get_by_label("Outcome").select_option("banned")
        await page.get_by_label("Days banned").fill("forever")
        await page.get_by_role("button", name="Resolve the incident").click()
        await expect(page.locator("#f-days-error")).to_contain_text("whole number of days")
        await page.get_by_label("Days banned").fill("30")
        await page.get_by_role("button", name="Resolve the incident").click()
        await expect(page.get_by_role("status")).to_contain_text("resolved")
        await expect(page.locator(".facts")).to_contain_text("banned for 30 days")
        line = await op.next_message(QUEUE_JID)
        assert f"Incident #{incident.id}" in line["body"] and "banned for 30 days" in line["body"]
        await wait_for(
            lambda: (
                any("closed" in s for s in _subjects(mail_sink, "ana@library.example"))
                and all(any("closed" in s for s in _subjects(mail_sink, c)) for c in COORDINATORS)
            ),
            what="outcome mails",
        )
        await page.reload()
        for who in (op.bare_jid, "ana@library.example", *COORDINATORS):
            await expect(trail).to_contain_text(who)
    finally:
        await page.context.close()
    closed = await desk.refdesk.store.incidents.get(incident.id)
    assert closed is not None and closed.outcome == "banned:30"


@pytest.mark.chat_config(unstaffed_alert_after=1.0)
async def test_unstaffed_queue_tells_on_call_and_coordinators_once_then_staffed(
    desk: Desk, mail_sink: MailSink
) -> None:
    # The queue has had nobody since start-up: that is an unstaffed spell of its own, told
    # after the delay (one second here) if the operator is slower than that to come online,
    # as on a loaded machine, and ended by them coming online ("staffed again"). The
    # coordinators and the on-call operator are named only once that spell is over (the
    # operator's presence fully handled, its staffing check included), so what they are
    # told is about the one spell this test makes.
    op = await desk.add_operator(name="Ana")
    await desk.refdesk.adapter.drained()
    await _coordinators(desk)
    directory = Directory.for_service(desk.service)
    await directory.save_operator(
        OperatorChange(op.bare_jid, ("ask",), email="ana@library.example", on_call=True)
    )
    await desk.service.reload_directory()
    op.set_presence("away")
    last = await op.next_message(QUEUE_JID)
    assert "last one available" in last["body"] and "unstaffed" in last["body"]
    alert = await op.next_message(QUEUE_JID)
    assert "nobody available" in alert["body"]

    def about_ask(to: str, word: str) -> list[str]:
        return [s for s in _subjects(mail_sink, to) if "(ask)" in s and word in s]

    await wait_for(
        lambda: (
            bool(about_ask("ana@library.example", "nobody"))
            and all(about_ask(c, "nobody") for c in COORDINATORS)
        ),
        what="unstaffed mails",
    )
    # Told once, however long it stays unstaffed.
    await desk.service.tick()
    await desk.service.idle()
    assert len(about_ask(COORDINATORS[0], "nobody")) == 1

    op.set_presence(None)
    staffed = await op.next_message(QUEUE_JID)
    assert "staffed again" in staffed["body"]
    await wait_for(
        lambda: all(about_ask(c, "staffed again") for c in COORDINATORS),
        what="staffed mails",
    )
    await desk.service.tick()
    await desk.service.idle()
    for c in COORDINATORS:
        assert len(about_ask(c, "nobody")) == 1 and len(about_ask(c, "staffed again")) == 1
    ask = await desk.store_queue("ask")
    trail = await desk.refdesk.store.notices.staffing_for_queue(ask.id)
    told = [n.purpose for n in reversed(trail) if n.recipient == COORDINATORS[0]]
    assert told == ["unstaffed", "staffed"]
    # The queue's admin page lists what was sent.
    session, _ = await admin_session(desk)
    async with session, session.get(f"{desk.url}/admin/queues/ask") as resp:
        page = await resp.text()
    staffing = page.split('id="staffing-h"', 1)[1].split("</section>", 1)[0]
    for who in (op.bare_jid, "ana@library.example", *COORDINATORS):
        assert f"<td>{who}</td>" in staffing
    assert "<td>unstaffed</td>" in staffing and "<td>staffed</td>" in staffing


@TRUSTED
async def test_coordinators_set_by_the_cli_show_on_the_admin_page_and_hear_a_cli_lift(
    desk: Desk, mail_sink: MailSink, tmp_path: Path
) -> None:
    config = cli_config(desk, tmp_path)
    argv = ["--config", str(config), "group", "set", "library"]
    code, err = await asyncio.to_thread(
        run_cli, [*argv, "--coordinator-email", "coord@library.example,head@library.example"]
    )
    assert code == 0, err
    await desk.service.poll_directory()
    session, _ = await admin_session(desk)
    async with session:
        async with session.get(f"{desk.url}/admin/groups/library") as resp:
            page = await resp.text()
        assert 'value="coord@library.example, head@library.example"' in page
        async with session.get(f"{desk.url}/admin/groups") as resp:
            listing = await resp.text()
    assert "coord@library.example, head@library.example</td>" in listing

    op = await desk.add_operator(name="Ana")
    patron = await _patron(desk)
    guest = await _accepted(op, patron, "something nasty")
    op.send_message(guest, "!ban 30d abuse")
    assert "Banned" in (await op.next_message(guest))["body"]
    await wait_for(lambda: len(mail_sink.to(COORDINATORS[0])) == 1, what="ban mail")

    code, err = await asyncio.to_thread(
        run_cli, ["--config", str(config), "ban", "lift", PATRON_IP]
    )
    assert code == 0, err
    await desk.service.poll_directory()
    await wait_for(
        lambda: all(any("lifted" in s for s in _subjects(mail_sink, c)) for c in COORDINATORS),
        what="lift mails after a lift on the command line",
    )
    lift = next(m for m in mail_sink.to(COORDINATORS[0]) if "lifted" in str(m.message["Subject"]))
    assert "admin (command line)" in lift.text()

    # Cleared with 'none': nobody is told any more.
    code, err = await asyncio.to_thread(run_cli, [*argv, "--coordinator-email", "none"])
    assert code == 0, err
    group = await desk.refdesk.store.groups.by_name("library")
    assert group is not None and group.coordinator_emails == ()


@pytest.mark.desk_config(trusted_proxies=("127.0.0.1",), limits=LimitsConfig(mails_per_recipient=1))
async def test_ban_notices_count_against_the_mail_limits(desk: Desk, mail_sink: MailSink) -> None:
    """The transcript request used the recipient's one email of the window: the ban
    notice is not sent, and the refusal is a rate-limit incident like any other."""
    op = await desk.add_operator(name="Ana")
    patron = await _patron(desk)
    guest = await _accepted(op, patron, "something nasty")
    await patron.send({"type": "transcript", "email": "patron@example.net"})
    assert (await patron.next("transcript_ok"))["email"] == "patron@example.net"
    op.send_message(guest, "!ban 30d abuse")
    assert "Banned" in (await op.next_message(guest))["body"]
    store = desk.refdesk.store
    await wait_for(lambda: desk.service.moderation.banned(PATRON_IP) is not None, what="the ban")
    await desk.service.idle()
    assert await store.mail.all() == []
    incidents = await store.incidents.all()
    assert any(i.kind == "rate-limit" and "email" in i.notes for i in incidents)
