"""One way to change the directory: the same bad input typed into the command line and
into the admin page's form is refused with the same sentence.

The CLI runs in this process (`main(argv)`, in a worker thread: it runs its own event
loop) against the database of a running refdesk; the admin page is that refdesk's, used
with a plain HTTP client that logs in and sends the CSRF token like a browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import io
import re
from pathlib import Path

import aiohttp
import pytest

from component.cli import main
from component.config import write_config_toml
from tests.conftest import COMPONENT_DOMAIN, Desk, admin_account

LONG_REASON = "spam " * 101  # 505 characters
# Every field of the queue settings form, valid: each case changes one.
QUEUE_FORM = {
    "title": "Ask us",
    "routing": "ring-all",
    "offer_timeout": "30",
    "rollover_after": "",
    "backup": "",
    "hours": "always",
    "timezone": "UTC",
    "closed_days": "",
    "escalation": "",
    "followup_email": "",
    "referral_email": "",
    "max_wait": "",
    "privacy": "full",
    "retention_days": "",
    "widget_color": "#0b57d0",
    "widget_logo": "",
    "greeting": "",
    "text_available": "",
    "text_away": "",
    "text_offline": "",
    "allowed_origins": "",
}
GROUP_FORM = {"title": "Library", "appeal_email": "", "referral_domains": ""}
OPERATOR_FORM = {"jid": "", "name": "", "max_chats": "3", "queue": "ask"}
BAN_FORM = {"target": "203.0.113.9", "reason": "", "length": "ladder", "ipv6_prefix": "64"}

# (what, CLI arguments, admin path, admin form, id of the admin's error message)
Case = tuple[str, list[str], str, dict[str, str], str]
CASES: list[Case] = []
for bad in [
    'o"brien@example.org',
    "josé@example.org",
    "x@straße.example",
    "name@example.org\r\nBcc: victim@example.org",
    "name@@example.org",
    "eve@localhost",
]:
    CASES.append(
        (
            f"appeal address {bad!r}",
            ["group", "set", "library", "--appeal-email", bad],
            "/admin/groups/library",
            {**GROUP_FORM, "appeal_email": bad},
            "group-appeal_email-error",
        )
    )
    CASES.append(
        (
            f"exempt network contact {bad!r}",
            ["group", "exempt", "library", "203.0.113.0/28", "--contact-email", bad],
            "/admin/groups/library/exempt",
            {"network": "203.0.113.0/28", "note": "School", "contact_email": bad},
            "exempt-contact_email-error",
        )
    )
    CASES.append(
        (
            f"follow-up address {bad!r}",
            ["queue", "set", "ask", "--email", bad],
            "/admin/queues/ask",
            {**QUEUE_FORM, "followup_email": bad},
            "queue-followup_email-error",
        )
    )
for bad in [
    "coordinator@example.org, josé@example.org",
    "coordinator@example.org\r\nBcc: victim@example.org",
    "coordinator@example.org eve@localhost",
    "<coordinator@example.org>",
    ",".join(f"c{i}@example.org" for i in range(11)),
    "x" * 300 + "@example.org",
]:
    CASES.append(
        (
            f"coordinator addresses {bad[:60]!r}",
            ["group", "set", "library", "--coordinator-email", bad],
            "/admin/groups/library",
            {**GROUP_FORM, "coordinator_emails": bad},
            "group-coordinator_emails-error",
        )
    )


for bad in [
    "ill@example.edu",
    "*.example.edu",
    "example.edu, exa<mple>.org",
    "localhost",
    "example.edu\x07",
    "a" * 300 + ".edu",
    ", ".join(f"d{n}.example.edu" for n in range(21)),
]:
    CASES.append(
        (
            f"referral domains {bad[:40]!r}",
            ["group", "set", "library", "--referral-domains", bad],
            "/admin/groups/library",
            {**GROUP_FORM, "referral_domains": bad},
            "group-referral_domains-error",
        )
    )


def queue_case(what: str, option: str, value: str, field: str) -> Case:
    """`queue set ask OPTION VALUE` against the queue settings form with FIELD = VALUE."""
    return (
        what,
        ["queue", "set", "ask", option, value],
        "/admin/queues/ask",
        {**QUEUE_FORM, field: value},
        f"queue-{field}-error",
    )


def operator_case(what: str, jid: str) -> Case:
    return (
        what,
        ["operator", "add", jid, "--queue", "ask"],
        "/admin/operators",
        {**OPERATOR_FORM, "jid": jid},
        "new-operator-jid-error",
    )


def ban_case(what: str, reason: str) -> Case:
    return (
        what,
        ["ban", "add", "203.0.113.9", "--reason", reason],
        "/admin/bans/new",
        {**BAN_FORM, "reason": reason},
        "f-reason-error",
    )


CASES += [
    operator_case("an operator JID on the service's own domain", f"ana@{COMPONENT_DOMAIN}"),
    operator_case("an operator JID with a resource", "ana@example.org/phone"),
    ban_case("an over-long ban reason", LONG_REASON),
    ban_case("a ban reason with a terminal escape", "spam\x1b[2J"),
    (
        "an over-long group title",
        ["group", "set", "library", "--title", "L" * 201],
        "/admin/groups/library",
        {**GROUP_FORM, "title": "L" * 201},
        "group-title-error",
    ),
    queue_case("a queue title with a control character", "--title", "Ask\x07us", "title"),
    (
        "a canned message with a control character",
        ["canned", "set", "hello", "Hi\x01", "--group", "library"],
        "/admin/groups/library/canned",
        {"name": "hello", "text": "Hi\x01"},
        "canned-text-error",
    ),
    queue_case("bad hours", "--hours", "fry 09:00-17:00", "hours"),
    queue_case("an unknown time zone", "--timezone", "Mars/Base", "timezone"),
    queue_case("a routing mode that does not exist", "--routing", "sideways", "routing"),
    queue_case("a bad offer timeout", "--offer-timeout", "soon", "offer_timeout"),
    (
        "an unknown backup queue",
        ["queue", "set", "ask", "--backup", "nope", "--rollover-after", "60"],
        "/admin/queues/ask",
        {**QUEUE_FORM, "backup": "nope", "rollover_after": "60"},
        "queue-backup-error",
    ),
    (
        "a bad queue name",
        ["queue", "add", "guest-x", "--group", "library"],
        "/admin/queues",
        {"name": "guest-x", "group": "library", "title": ""},
        "new-queue-name-error",
    ),
]


def run_cli(argv: list[str]) -> tuple[int, str]:
    """`refdesk ARGV` in this process: exit status and standard error."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue()


def cli_config(desk: Desk, folder: Path) -> Path:
    """A config file for the CLI naming the running refdesk's domain and database."""
    config = desk.refdesk.config
    path = folder / "cli.toml"
    path.write_text(
        write_config_toml(
            {
                "xmpp": {"domain": config.xmpp.domain, "secret": config.xmpp.secret},
                # The desk's own database, PostgreSQL included.
                "storage": (
                    {"url": config.storage.url}
                    if config.storage.url
                    else {"path": str(config.storage.path)}
                ),
            }
        ),
        "utf-8",
    )
    return path


def error_text(page: str, error_id: str) -> str:
    """The message shown in the element with `error_id` (next to its field)."""
    found = re.search(
        rf'id="{re.escape(error_id)}">(?:<span class="visually-hidden">Error: </span>)?(.*?)</p>',
        page,
        re.S,
    )
    assert found, f"no {error_id} on the page"
    return html.unescape(found.group(1)).strip()


async def admin_session(desk: Desk) -> tuple[aiohttp.ClientSession, str]:
    """A logged-in admin's HTTP session and its CSRF token."""
    user, password = await admin_account(desk)
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with session.get(f"{desk.url}/admin/login") as resp:
        token = re.search(r'name="csrf" value="([^"]+)"', await resp.text())
    assert token
    form = {"csrf": token.group(1), "username": user, "password": password, "next": "/admin/"}
    async with session.post(f"{desk.url}/admin/login", data=form) as resp:
        assert resp.status == 200
    async with session.get(f"{desk.url}/admin/groups") as resp:
        token = re.search(r'name="csrf" value="([^"]+)"', await resp.text())
    assert token
    return session, token.group(1)


@pytest.mark.parametrize(
    ("what", "argv", "path", "form", "error_id"), CASES, ids=[c[0] for c in CASES]
)
async def test_cli_and_admin_refuse_alike(
    offline_desk: Desk,
    tmp_path: Path,
    what: str,
    argv: list[str],
    path: str,
    form: dict[str, str],
    error_id: str,
) -> None:
    config = cli_config(offline_desk, tmp_path)
    code, err = await asyncio.to_thread(run_cli, ["--config", str(config), *argv])
    lines = [line for line in err.splitlines() if line.strip()]
    assert code != 0 and len(lines) == 1, (what, err)
    assert lines[0].startswith("refdesk: error: "), lines[0]
    cli_message = lines[0].removeprefix("refdesk: error: ")

    session, token = await admin_session(offline_desk)
    url = f"{offline_desk.url}{path}"
    async with session, session.post(url, data={**form, "csrf": token}) as resp:
        page = await resp.text()
        assert resp.status == 400, (what, resp.status)
    assert error_text(page, error_id) == cli_message, what
    # Nothing was written by either.
    store = offline_desk.refdesk.store
    assert await store.operators.all() == []
    assert await store.bans.all() == []
    group = await store.groups.by_name("library")
    assert group is not None and group.title == "Library" and group.appeal_email is None
    assert group.coordinator_emails == ()
    assert group.referral_domains == ()
    assert await store.exempt.rows(group.id) == []


async def test_referral_domains_cannot_leave_a_queues_referral_address_outside(
    offline_desk: Desk, tmp_path: Path
) -> None:
    """A queue's referral address outside its group's referral domains, and narrowing the
    domains past a queue's address, are refused the same way by the CLI and the admin
    page (a plain `!refer` would otherwise mail where a typed address may not go)."""
    config = cli_config(offline_desk, tmp_path)
    store = offline_desk.refdesk.store

    async def cli(*argv: str) -> tuple[int, str]:
        code, err = await asyncio.to_thread(run_cli, ["--config", str(config), *argv])
        return code, err.strip().removeprefix("refdesk: error: ")

    assert (await cli("group", "set", "library", "--referral-domains", "example.org"))[0] == 0
    code, cli_message = await cli("queue", "set", "ask", "--referral-email", "eve@else.example")
    assert code != 0 and "referrals go only to example.org" in cli_message, cli_message
    session, token = await admin_session(offline_desk)
    async with session:
        form = {**QUEUE_FORM, "referral_email": "eve@else.example", "csrf": token}
        async with session.post(f"{offline_desk.url}/admin/queues/ask", data=form) as resp:
            assert resp.status == 400
            page = await resp.text()
        assert error_text(page, "queue-referral_email-error") == cli_message
        queue = await store.queues.by_name("ask")
        assert queue is not None and queue.referral_email is None

        code, err = await cli("queue", "set", "ask", "--referral-email", "ill@lib.example.org")
        assert code == 0, err
        code, cli_message = await cli("group", "set", "library", "--referral-domains", "x.edu")
        assert code != 0 and "ill@lib.example.org" in cli_message, cli_message
        form = {**GROUP_FORM, "referral_domains": "x.edu", "csrf": token}
        async with session.post(f"{offline_desk.url}/admin/groups/library", data=form) as resp:
            assert resp.status == 400
            page = await resp.text()
        assert error_text(page, "group-referral_domains-error") == cli_message
    group = await store.groups.by_name("library")
    assert group is not None and group.referral_domains == ("example.org",)


async def test_referral_domains_set_by_cli_show_on_the_admin_page(
    offline_desk: Desk, tmp_path: Path
) -> None:
    """`group set --referral-domains` stores the domains in their ASCII form; the admin
    group page shows them and saves them back; 'none' allows any domain again."""
    config = cli_config(offline_desk, tmp_path)
    argv = ["group", "set", "library", "--referral-domains", "Example.EDU, bücher.example"]
    code, err = await asyncio.to_thread(run_cli, ["--config", str(config), *argv])
    assert code == 0, err
    store = offline_desk.refdesk.store
    group = await store.groups.by_name("library")
    assert group is not None
    assert group.referral_domains == ("example.edu", "xn--bcher-kva.example")
    session, token = await admin_session(offline_desk)
    url = f"{offline_desk.url}/admin/groups/library"
    async with session:
        async with session.get(url) as resp:
            assert 'value="example.edu, xn--bcher-kva.example"' in await resp.text()
        form = {**GROUP_FORM, "referral_domains": "library.example.org", "csrf": token}
        async with session.post(url, data=form) as resp:
            assert resp.status == 200
    group = await store.groups.by_name("library")
    assert group is not None and group.referral_domains == ("library.example.org",)
    argv = ["group", "set", "library", "--referral-domains", "none"]
    code, err = await asyncio.to_thread(run_cli, ["--config", str(config), *argv])
    assert code == 0, err
    group = await store.groups.by_name("library")
    assert group is not None and group.referral_domains == ()


async def test_exempt_network_contact_by_cli_and_on_the_admin_page(
    offline_desk: Desk, tmp_path: Path
) -> None:
    """`group exempt` takes a note and a contact address; adding the same network again
    changes them; the admin group page lists the contact."""
    config = cli_config(offline_desk, tmp_path)
    base = ["--config", str(config), "group", "exempt", "library"]
    for argv in (
        [*base, "203.0.113.0/28", "--note", "School", "--contact-email", "a@school.example"],
        [*base, "203.0.113.0/28", "--note", "Northside", "--contact-email", "b@school.example"],
    ):
        code, err = await asyncio.to_thread(run_cli, argv)
        assert code == 0, err
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert await asyncio.to_thread(main, base) == 0
    assert out.getvalue().strip() == "203.0.113.0/28\tNorthside\tb@school.example"
    session, _ = await admin_session(offline_desk)
    async with session, session.get(f"{offline_desk.url}/admin/groups/library") as resp:
        page = await resp.text()
    assert "<td>Northside</td><td>b@school.example</td>" in page
