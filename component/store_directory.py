"""Queries for the admin pages: directory."""

from __future__ import annotations

from component.store_base import StoreBase


class DirectoryQueries(StoreBase):
    """Mixed into `component.store.Store`."""
