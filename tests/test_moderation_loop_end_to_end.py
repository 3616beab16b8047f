"""The moderation loop end to end, with real XMPP clients (on Prosody and ejabberd), a
real SMTP server and patrons on the widget's WebSocket: referral limits per group, sticky
pickup of a returning patron, and the shared-computer contacts of exempt networks."""

from __future__ import annotations

import pytest

from component.config import LimitsConfig
from component.directory import Directory, GroupChange
from tests.conftest import Desk
from tests.mail_sink import MailSink
from tests.patron_client import ProxiedPatron

REFERRAL = "ill@library.example"
TRUSTED = pytest.mark.desk_config(trusted_proxies=("127.0.0.1",))


async def _patron(desk: Desk, ip: str) -> ProxiedPatron:
    patron = ProxiedPatron(desk.url, "ask", ip)
    desk.patrons.append(patron)
    await patron.connect()
    return patron


async def _set_group(desk: Desk, change: GroupChange) -> None:
    directory = Directory.for_service(desk.service)
    await directory.change_group(await directory.group_named("library"), change)


# --- referral limits ---------------------------------------------------------------------


@pytest.mark.desk_config(
    trusted_proxies=("127.0.0.1",),
    limits=LimitsConfig(mails_per_recipient=2, mails_per_address=10, mail_window=3600.0),
)
async def test_refer_goes_only_to_the_groups_domains_and_is_rate_limited(
    desk: Desk, mail_sink: MailSink
) -> None:
    await _set_group(desk, GroupChange(referral_domains="library.example, example.edu"))
    op = await desk.add_operator(name="Ana")
    patron = await _patron(desk, "203.0.113.40")
    await patron.say("Please send my question to someone")
    guest = (await op.next_message())["from"].bare
    op.send_message(guest, "!accept")
    await op.next_message(guest)

    # Outside the allowed domains (a look-alike suffix included): refused, naming them.
    for outside in ("someone@evil.example", "ill@notlibrary.example"):
        op.send_message(guest, f"!refer {outside}")
        refused = (await op.next_message(guest))["body"]
        assert "library.example, example.edu" in refused and "Referred" not in refused
    # A subdomain of an allowed domain is the institution's.
    op.send_message(guest, "!refer ILL@branch.Library.example")
    assert "Referred to ILL@branch.library.example" in (await op.next_message(guest))["body"]
    (mail,) = await mail_sink.wait_for(1)
    assert mail.rcpt_tos == ["ILL@branch.library.example"]

    # Typed addresses count against the mail limits: the third to one recipient waits.
    op.send_message(guest, "!refer ill@example.edu")
    assert "Referred" in (await op.next_message(guest))["body"]
    op.send_message(guest, "!refer ill@example.edu")
    assert "Referred" in (await op.next_message(guest))["body"]
    op.send_message(guest, "!refer ill@example.edu")
    refused = (await op.next_message(guest))["body"]
    assert "Not referred: Too many emails" in refused
    await mail_sink.wait_for(3)
    assert len(mail_sink.to("ill@example.edu")) == 2
