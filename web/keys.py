"""Typed application keys, all in one place."""

from __future__ import annotations

from aiohttp import web

from component.config import Config
from component.service import DeskService
from web.connlimits import AddressSlots
from web.hub import PatronHub
from web.longpoll_registry import LongPollSessions

SERVICE = web.AppKey("service", DeskService)
CONFIG = web.AppKey("config", Config)
HUB = web.AppKey("hub", PatronHub)
# Open patron sockets, closed with "going away" when the server shuts down.
SOCKETS: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("sockets")
LONGPOLL = web.AppKey("longpoll", LongPollSessions)
# WebSockets and long-poll sessions per patron address (behind a proxy too).
PATRON_SLOTS = web.AppKey("patron_slots", AddressSlots)
