"""What operators' clients expect of the XMPP server, on the servers the tests (and the
demo) run: a librarian on a phone and a desktop at once needs message carbons (XEP-0280)
and an archive (XEP-0313), or half of each chat is missing on one device. Clients such as
Conversations and Gajim report "service-unavailable" when enabling carbons fails."""

from __future__ import annotations

import secrets

from slixmpp.exceptions import IqError

from tests.operator_client import OperatorClient
from tests.xmpp_servers import XmppServer

CARBONS = "urn:xmpp:carbons:2"
MAM = "urn:xmpp:mam:2"


async def _login(server: XmppServer, user: str, password: str, resource: str) -> OperatorClient:
    client = OperatorClient(
        f"{user}@{server.domain}/{resource}", password, server.host, server.c2s_port
    )
    await client.connect()
    client.xmpp.register_plugin("xep_0280")
    return client


async def test_operators_can_enable_carbons_and_get_copies(xmpp_server: XmppServer) -> None:
    user, password = f"multi{secrets.token_hex(3)}", secrets.token_hex(8)
    await xmpp_server.register(user, password)
    other, other_password = f"peer{secrets.token_hex(3)}", secrets.token_hex(8)
    await xmpp_server.register(other, other_password)
    phone = await _login(xmpp_server, user, password, "phone")
    desktop = await _login(xmpp_server, user, password, "desktop")
    peer = await _login(xmpp_server, other, other_password, "laptop")
    try:
        for client in (phone, desktop):
            try:
                await client.xmpp.plugin["xep_0280"].enable()
            except IqError as exc:
                condition = exc.iq["error"]["condition"]
                raise AssertionError(
                    f"{xmpp_server.kind}: enabling message carbons failed: {condition}"
                ) from None
        # A message to the phone's session also reaches the desktop, as a carbon copy.
        copies: list[str] = []
        desktop.xmpp.add_event_handler(
            "carbon_received", lambda msg: copies.append(msg["carbon_received"]["body"])
        )
        peer.send_message(f"{user}@{xmpp_server.domain}/phone", "seen on both devices")
        received = await phone.next_message(f"{other}@{xmpp_server.domain}")
        assert received["body"] == "seen on both devices"
        for _ in range(50):
            if copies:
                break
            # A round trip on the desktop's own stream, instead of a sleep.
            await desktop.xmpp.plugin["xep_0199"].ping(timeout=5)
        assert copies == ["seen on both devices"], xmpp_server.log_tail()
        if xmpp_server.kind == "prosody":
            # The demo's Prosody keeps an archive too, for a device that was off meanwhile.
            # (The test ejabberd has carbons only; the documented ejabberd config, with its
            # archive, runs in tests/test_deploy_files.py.)
            info = await phone.xmpp.plugin["xep_0030"].get_info(
                jid=f"{user}@{xmpp_server.domain}", timeout=10
            )
            features = set(info["disco_info"]["features"])
            assert MAM in features, sorted(features)
    finally:
        for client in (phone, desktop, peer):
            await client.disconnect()
