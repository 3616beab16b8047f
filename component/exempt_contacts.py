"""Exempt-network contacts: incidents that keep coming from a shared computer's network
(a school, a library), which may not be banned, draft a message to the network's contact
for an admin to send instead.

`Moderation` owns one (`moderation.exempt_contacts`); the moderation commands call
`note_incident` after an incident. What counts as "repeated" and the draft's wording are
pure, in `component.core.exempt_contact`.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Protocol

from component.core.bans import BanError, canonical_address, canonical_network
from component.core.exempt_contact import INCIDENT_WINDOW, draft_body, due
from component.store import Store


class ContactsHost(Protocol):
    """The store and the injected clock (the service provides both)."""

    store: Store

    def clock(self) -> datetime: ...


class ExemptContacts:
    """Created by `Moderation` with the service and `[bans] repeated_incidents`."""

    def __init__(self, host: ContactsHost, repeated: int) -> None:
        self.host = host
        self.repeated = repeated

    async def note_incident(
        self, group_id: int, group_title: str, address: str | None
    ) -> int | None:
        """Called by the moderation commands after an incident in a chat of the group's
        queues (an incident tag, a `!ban` reported or refused): if `address` lies in one of
        the group's exempt networks that has a contact, and incidents from that network
        are repeated, draft (or bring up to date) the message to the contact for an admin
        to send instead of a ban. Incidents count only with the address their queue's
        privacy mode kept. Returns the draft's id, or None."""
        if address is None:
            return None
        try:
            patron = canonical_address(address)
        except BanError:
            return None
        store = self.host.store
        for row in await store.exempt.rows(group_id):
            network = canonical_network(ipaddress.ip_network(row.network, strict=False))
            if row.contact_email and patron.version == network.version and patron in network:
                break
        else:
            return None
        now = self.host.clock()
        contacts = store.exempt_contacts
        incidents = due(
            await contacts.incidents_since(group_id, now - INCIDENT_WINDOW),
            network,
            now,
            self.repeated,
        )
        if not incidents:
            return None
        body = draft_body(
            group_title=group_title, network=row.network, note=row.note, incidents=incidents
        )
        ids = tuple(i.id for i in incidents)
        existing = await contacts.open_draft(group_id, row.network)
        if existing is not None:
            await contacts.update_draft(existing.id, incidents=ids, body=body)
            return existing.id
        return await contacts.add_draft(
            group_id=group_id,
            network=row.network,
            contact_email=row.contact_email,
            incidents=ids,
            body=body,
            now=now,
        )
