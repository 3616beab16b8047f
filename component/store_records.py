"""Queries for the admin pages: records."""

from __future__ import annotations

from component.store_base import StoreBase


class RecordQueries(StoreBase):
    """Mixed into `component.store.Store`."""
