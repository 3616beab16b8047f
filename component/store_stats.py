"""Queries for the admin pages: stats."""

from __future__ import annotations

from component.store_base import StoreBase


class StatsQueries(StoreBase):
    """Mixed into `component.store.Store`."""
