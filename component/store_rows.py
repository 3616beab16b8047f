"""Turning database rows into domain values, shared by the store's query modules."""

from __future__ import annotations

from ipaddress import ip_network

import aiosqlite

from component.core.bans import Ban
from component.core.models import Incident, OutboxMail
from component.store_base import _dt


def ban_from_row(row: aiosqlite.Row) -> Ban:
    starts = _dt(row["starts_at"])
    assert starts is not None
    ends = _dt(row["ends_at"])
    return Ban(
        id=row["id"],
        network=ip_network(row["network"], strict=False),
        offence=row["offence"],
        reason=row["reason"],
        starts_at=starts,
        ends_at=ends,
        lifted_at=_dt(row["lifted_at"]),
        permanent=ends is None,
        created_by=row["created_by"],
    )


def incident_from_row(row: aiosqlite.Row) -> Incident:
    created = _dt(row["created_at"])
    assert created is not None
    return Incident(
        id=row["id"],
        kind=row["kind"],
        chat_id=row["chat_id"],
        address=row["address"],
        queue_id=row["queue_id"],
        reporter=row["reporter"],
        tags=tuple(t for t in row["tags"].split(",") if t),
        notes=row["notes"],
        explicit=bool(row["explicit"]),
        status=row["status"],
        created_at=created,
        resolution=row["resolution"],
        resolved_at=_dt(row["resolved_at"]),
        outcome=row["outcome"],
    )


def mail_from_row(row: aiosqlite.Row) -> OutboxMail:
    next_at = _dt(row["next_attempt_at"])
    created = _dt(row["created_at"])
    assert next_at is not None and created is not None
    return OutboxMail(
        id=row["id"],
        purpose=row["purpose"],
        recipients=tuple(row["recipients"].split("\n")),
        message=bytes(row["message"]),
        status=row["status"],
        attempts=row["attempts"],
        last_error=row["last_error"],
        next_attempt_at=next_at,
        created_at=created,
        ticket_id=row["ticket_id"],
        chat_id=row["chat_id"],
        sent_at=_dt(row["sent_at"]),
    )
