"""What coordinators and sysadmins look up on the admin page: a group's coordinators and
referral domains, sticky pickup marks (and clearing one), a patron's rating beside the
transcript. Over plain HTTP with a logged-in session; coordinators kept to their group."""

from __future__ import annotations

from component.directory import Directory, GroupChange
from tests.conftest import Desk
from tests.web.admin.test_moderation import admin_client, other_group


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
