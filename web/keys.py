"""Typed application keys, all in one place."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from component.config import Config
from component.operations import Operations
from component.service import DeskService
from web.addresses import IPNetwork
from web.connlimits import AddressSlots
from web.hub import PatronHub
from web.longpoll_registry import LongPollSessions
from web.status_body import StatusBodies

SERVICE = web.AppKey("service", DeskService)
CONFIG = web.AppKey("config", Config)
HUB = web.AppKey("hub", PatronHub)
# Open patron sockets, closed with "going away" when the server shuts down.
SOCKETS: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("sockets")
LONGPOLL = web.AppKey("longpoll", LongPollSessions)
# The widget files that /widget/{name} serves, by name (see web.assets).
WIDGET_FILES: web.AppKey[dict[str, Path]] = web.AppKey("widget_files")
# The vendored operators' client files that /operator/converse/{path} serves, by path.
OPERATOR_FILES: web.AppKey[dict[str, Path]] = web.AppKey("operator_files")
OPERATIONS = web.AppKey("operations", Operations)
METRICS_NETWORKS: web.AppKey[tuple[IPNetwork, ...]] = web.AppKey("metrics_networks")
# WebSockets and long-poll sessions per patron address (behind a proxy too).
PATRON_SLOTS = web.AppKey("patron_slots", AddressSlots)
# The status endpoint's encoded answers, per queue (see web.status_body).
STATUS_BODIES = web.AppKey("status_bodies", StatusBodies)
