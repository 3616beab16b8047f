"""The store's public methods that the other store tests and the admin walk leave out,
each run on both engines and read back: asyncpg is strict about parameter types (int,
text, dates, NULL, a parameter in a SELECT list) where SQLite is lenient, so a method
that works on SQLite may fail only on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from ipaddress import ip_network
from pathlib import Path

from component.core.bans import Ban
from component.core.models import NewMail
from component.store import Store
from tests.component.test_store import T0, db_path, event, make_queue, store  # noqa: F401

MAIL = NewMail("transcript", ("pat@example.org",), b"From: desk\r\n\r\nHello")


async def test_admin_accounts_and_sessions(store: Store) -> None:  # noqa: F811
    admin_id = await store.accounts.add_admin("boss", "hash-1", "admin", None, T0)
    group = await store.groups.add("library", "Library", T0)
    await store.accounts.add_admin("coord", "hash-2", "coordinator", group.id, T0)
    assert [a.username for a in await store.accounts.admins()] == ["boss", "coord"]
    await store.accounts.set_admin_password(admin_id, "hash-3")
    found = await store.accounts.admin_by_name("boss")
    assert found is not None and found.password_hash == "hash-3"

    await store.accounts.add_session("tok", admin_id, "csrf", T0, T0 + timedelta(hours=1))
    await store.accounts.extend_session("tok", T0 + timedelta(hours=5))
    session = await store.accounts.session("tok", T0 + timedelta(hours=3))
    assert session is not None and session.expires_at == T0 + timedelta(hours=5)
    await store.accounts.delete_sessions_of(admin_id)
    assert await store.accounts.session("tok", T0) is None

    await store.accounts.delete_admin(admin_id)
    assert [a.username for a in await store.accounts.admins()] == ["coord"]


async def test_ban_changes_and_audit(store: Store) -> None:  # noqa: F811
    ban = await store.bans.add(
        Ban(0, ip_network("192.0.2.0/24"), 1, "spam", T0, T0 + timedelta(days=7)), T0
    )
    later = T0 + timedelta(days=30)
    await store.bans.change_end(ban.id, later, "boss", T0, "longer")
    changed = await store.bans.get(ban.id)
    assert changed is not None and changed.ends_at == later
    # Noted once however often the index drops it.
    await store.bans.audit_expiry(ban.id, later)
    await store.bans.audit_expiry(ban.id, later)
    actions = [a.action for a in await store.bans.audit(ban.id)]
    assert actions.count("change") == 1 and actions.count("expire") == 1
    assert {a.ban_id for a in await store.bans.audit()} == {ban.id}
    assert await store.notices.ban_chat(ban.id) == (None, None)


async def test_chat_changes_addresses_and_tags(store: Store) -> None:  # noqa: F811
    ask = await make_queue(store)
    other = await make_queue(store, "other")
    chat = await store.chats.create(ask.id, "guest-a", "hash-a", "198.51.100.7", None, T0)
    await store.chats.append_event(event(chat.id, 1, "teh catalog"))
    await store.commits.flush()
    await store.chats.correct_event(chat.id, 1, "the catalogue", T0)
    [line] = await store.chats.events_after(chat.id, 0)
    assert line.text == "the catalogue"
    await store.chats.set_queue(chat.id, other.id)
    moved = await store.chats.by_id(chat.id)
    assert moved is not None and moved.queue_id == other.id
    await store.chats.set_transcript_email(chat.id, "pat@example.org")
    assert await store.notices.patron_addresses(chat.id) == ["pat@example.org"]
    await store.chats.set_transcript_email(chat.id, None)
    assert await store.notices.patron_addresses(chat.id) == []
    await store.chats.add_tag(chat.id, "maps", None, T0)
    assert await store.chats.tags(chat.id) == ["maps"]
    found = await store.chats.from_addresses(["198.51.100.7", "203.0.113.1"], limit=5)
    assert [c.id for c in found] == [chat.id]


async def test_incidents_and_notifications(store: Store) -> None:  # noqa: F811
    ask = await make_queue(store)
    chat = await store.chats.create(ask.id, "guest-a", "hash-a", "198.51.100.7", None, T0)
    incident = await store.incidents.add(
        kind="abuse", reporter="ana@example.org", now=T0, chat_id=chat.id, queue_id=ask.id
    )
    await store.incidents.update(incident, tags=["threat", "spam"], notes="n", explicit=True)
    got = await store.incidents.get(incident)
    assert got is not None and got.tags == ("threat", "spam") and got.explicit
    first = await store.incidents.first_for_chat(chat.id, "abuse")
    assert first is not None and first.id == incident
    assert [i.id for i in await store.incidents.all(status="open", limit=10)] == [incident]
    notice = await store.notices.record(
        purpose="incident",
        channel="email",
        recipient="coord@example.org",
        summary="reported",
        now=T0,
        incident_id=incident,
        chat_id=chat.id,
        queue_id=ask.id,
    )
    assert [n.id for n in await store.notices.recent(limit=5)] == [notice]


async def test_exempt_contact_drafts(store: Store) -> None:  # noqa: F811
    ask = await make_queue(store)
    group = await store.groups.by_name("library")
    assert group is not None
    await store.exempt.add(group.id, "203.0.113.0/28", "School", "it@school.example")
    incident = await store.incidents.add(
        kind="abuse", reporter="ana", now=T0, address="203.0.113.3", queue_id=ask.id
    )
    seen = await store.exempt_contacts.incidents_since(group.id, T0 - timedelta(days=1))
    assert [s.id for s in seen] == [incident]
    draft_id = await store.exempt_contacts.add_draft(
        group_id=group.id,
        network="203.0.113.0/28",
        contact_email="it@school.example",
        incidents=(incident,),
        body="one",
        now=T0,
    )
    await store.exempt_contacts.update_draft(draft_id, incidents=(incident, 99), body="two")
    draft = await store.exempt_contacts.open_draft(group.id, "203.0.113.0/28")
    assert draft is not None and draft.incidents == (incident, 99) and draft.body == "two"
    assert await store.exempt_contacts.send(draft_id, body="sent", mail=MAIL, actor="boss", now=T0)
    assert not await store.exempt_contacts.send(
        draft_id, body="again", mail=MAIL, actor="boss", now=T0
    )
    sent = await store.exempt_contacts.draft(group.id, draft_id)
    assert sent is not None and sent.status == "sent" and sent.sent_by == "boss"


async def test_handover_sticky_links_and_operator_email(store: Store) -> None:  # noqa: F811
    ask = await make_queue(store)
    await store.handover.set_note(ask.id, "ana@example.org", "Ana", "Printer is down", T0)
    assert await store.handover.mark_delivered(ask.id, "bo@example.org", T0)
    assert not await store.handover.mark_delivered(ask.id, "cy@example.org", T0)
    note = await store.handover.note(ask.id)
    assert note is not None and note.delivered_to == "bo@example.org"
    assert await store.handover.clear(ask.id)
    assert not await store.handover.clear(ask.id)

    chat = await store.chats.create(ask.id, "guest-a", "hash-a", None, None, T0)
    for _ in range(2):
        await store.sticky.remember(
            key="k",
            operator_jid="ana@example.org",
            chat_id=chat.id,
            why="ended",
            now=T0,
            expires_at=T0 + timedelta(hours=1),
        )
    assert len(await store.sticky.current(T0)) == 1

    group = await store.groups.by_name("library")
    assert group is not None
    await store.links.add(group.id, "Hours", "https://library.example/hours")
    assert [link.title for link in await store.links.of_group(group.id)] == ["Hours"]
    ana = await store.operators.upsert("ana@example.org", "Ana", 3, T0)
    await store.operators.set_email(ana.id, "ana@library.example")
    again = await store.operators.by_id(ana.id)
    assert again is not None and again.email == "ana@library.example"


async def test_outbox_and_tickets(store: Store) -> None:  # noqa: F811
    ask = await make_queue(store)
    chat = await store.chats.create(ask.id, "guest-a", "hash-a", None, None, T0)
    first = await store.mail.enqueue(MAIL, T0)
    assert await store.mail.enqueue_transcript(chat.id, MAIL, T0)
    assert not await store.mail.enqueue_transcript(chat.id, MAIL, T0)
    assert await store.mail.transcript_mailed(chat.id)
    await store.mail.mark_retry(first, T0 + timedelta(minutes=5), "451 later")
    summary = await store.ops.outbox_summary()
    assert summary.pending == 2 and summary.oldest_pending == T0
    await store.mail.mark_failed(first, "550 no")
    assert (await store.ops.outbox_summary()).failed == 1
    ticket_id = await store.tickets.create(
        kind="offline",
        queue_id=ask.id,
        question="Atlases?",
        now=T0,
        mails=lambda _ticket: [MAIL],
        email="pat@example.org",
    )
    ticket = await store.tickets.get(ticket_id)
    assert ticket is not None and ticket.question == "Atlases?"


async def test_operations_answers(store: Store, db_path: Path | str) -> None:  # noqa: F811
    assert await store.ops.probe_writable(5) is None
    assert await store.ops.integrity_check() == "ok"
    if store.dialect == "postgresql":
        assert await store.ops.journal_mode() == "postgresql"
        assert await store.ops.database_file() is None
    else:
        assert await store.ops.journal_mode() == "wal"
        assert await store.ops.database_file() == Path(db_path).resolve()
