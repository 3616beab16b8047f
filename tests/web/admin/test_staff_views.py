"""What coordinators and sysadmins look up on the admin page: a group's coordinators and
referral domains, sticky pickup marks (and clearing one), a patron's rating beside the
transcript. Over plain HTTP with a logged-in session; coordinators kept to their group."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from component.directory import Directory, GroupChange
from tests.conftest import Desk
from tests.web.admin.test_moderation import (
    TRUSTED,
    admin_client,
    chat,
    operator_on,
    other_group,
)


async def test_groups_page_lists_coordinators_and_referral_domains(offline_desk: Desk) -> None:
    desk = offline_desk
    await other_group(desk)
    store = desk.refdesk.store
    group = await store.groups.by_name("library")
    assert group is not None
    await Directory.for_service(desk.service).change_group(
        group,
        GroupChange(coordinator_emails="head@lib.example", referral_domains="lib.example"),
    )
    admin = await admin_client(desk)
    try:
        status, html = await admin.get("/admin/groups")
        assert status == 200
        assert '<th scope="col">Referral domains</th>' in html
        assert "head@lib.example" in html and "<td>lib.example</td>" in html
        # The branch group has none: any domain.
        assert "<td>any</td>" in html
    finally:
        await admin.session.close()


XSS = "<img src=x onerror=alert(1)>"


@TRUSTED
async def test_transcript_view_and_downloads_show_the_patrons_rating(
    offline_desk: Desk,
) -> None:
    desk = offline_desk
    ana = await operator_on(desk, "ask", "Ana")
    rated = await chat(desk, "203.0.113.10", ("hello",), ("Hi there.",), jid=ana)
    plain = await chat(desk, "203.0.113.11", ("hi",), ("Hello.",), jid=ana)
    assert rated.chat_id is not None and plain.chat_id is not None
    comment = f"=HYPERLINK(1) {XSS} very quick"
    await desk.refdesk.store.ratings.add(rated.chat_id, 4, comment, datetime.now(UTC))
    admin = await admin_client(desk)
    try:
        status, html = await admin.get(f"/admin/transcripts/{rated.chat_id}")
        assert status == 200
        assert "<dt>Rating</dt><dd>4 out of 5" in html
        assert XSS not in html and "&lt;img src=x onerror=alert(1)&gt; very quick" in html
        status, html = await admin.get(f"/admin/transcripts/{plain.chat_id}")
        assert "<dt>Rating</dt><dd>not rated</dd>" in html

        _, body, _ = await admin.get_raw(f"/admin/transcripts/{rated.chat_id}.txt")
        assert f"Rating:   4/5: {comment}" in body.decode()
        _, body, _ = await admin.get_raw(f"/admin/transcripts/{plain.chat_id}.txt")
        assert "Rating:   -" in body.decode()

        _, body, _ = await admin.get_raw(f"/admin/transcripts/{rated.chat_id}.csv")
        rows = list(csv.reader(io.StringIO(body.decode())))
        facts = dict(zip(rows[0], rows[1], strict=True))
        assert facts["rating"] == "4"
        # Patron-typed: a spreadsheet must not run it as a formula.
        assert facts["rating_comment"] == "'" + comment
        assert all(dict(zip(rows[0], r, strict=True))["rating"] == "" for r in rows[2:])

        # A chat flagged explicit is described, not quoted: its comment too.
        sealed = await chat(desk, "203.0.113.12", ("rude",), ("!tag explicit",), jid=ana)
        assert sealed.chat_id is not None
        await desk.refdesk.store.ratings.add(sealed.chat_id, 1, "rude comment", datetime.now(UTC))
        status, html = await admin.get(f"/admin/transcripts/{sealed.chat_id}")
        assert "<dt>Rating</dt><dd>1 out of 5" in html and "rude comment" not in html
        status, html = await admin.get(f"/admin/transcripts/{sealed.chat_id}?verbatim=1")
        assert "rude comment" in html
    finally:
        await admin.session.close()


@TRUSTED
async def test_a_coordinator_sees_the_rating_of_their_groups_chats_only(
    offline_desk: Desk,
) -> None:
    desk = offline_desk
    await other_group(desk)
    bo = await operator_on(desk, "elsewhere", "Bo")
    theirs = await chat(desk, "198.51.100.2", ("hi",), ("Hello.",), jid=bo, queue="elsewhere")
    assert theirs.chat_id is not None
    await desk.refdesk.store.ratings.add(theirs.chat_id, 1, "secret remark", datetime.now(UTC))
    coordinator = await admin_client(desk, "coord", role="coordinator", group="library")
    try:
        for suffix in ("", ".txt", ".csv"):
            status, body, _ = await coordinator.get_raw(
                f"/admin/transcripts/{theirs.chat_id}{suffix}"
            )
            assert status == 404 and b"secret remark" not in body
    finally:
        await coordinator.session.close()
