"""Turning database rows into domain values, shared by the store's query modules."""

from __future__ import annotations

import socket
from ipaddress import IPv4Network, IPv6Network, ip_network

import aiosqlite

from component.core.bans import Ban
from component.core.models import Incident, OutboxMail
from component.store_base import _dt


def _network(text: str) -> IPv4Network | IPv6Network:
    """A stored network (written as `str(network)`). The address goes through the C
    parser: `ip_network`'s pure-Python one took most of the 3 s that reading 100,000 bans
    at start-up cost. Anything unusual falls back to `ip_network`."""
    address, _, prefix = text.partition("/")
    try:
        bits = int(prefix) if prefix else None
        if ":" in address:
            value = int.from_bytes(socket.inet_pton(socket.AF_INET6, address), "big")
            return IPv6Network((value, 128 if bits is None else bits), strict=False)
        value = int.from_bytes(socket.inet_pton(socket.AF_INET, address), "big")
        return IPv4Network((value, 32 if bits is None else bits), strict=False)
    except (OSError, ValueError):
        return ip_network(text, strict=False)


def ban_from_row(row: aiosqlite.Row) -> Ban:
    starts = _dt(row["starts_at"])
    assert starts is not None
    ends = _dt(row["ends_at"])
    return Ban(
        id=row["id"],
        network=_network(row["network"]),
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
