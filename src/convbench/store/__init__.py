"""The results store: SQLite, versioned schema, one transaction per cell."""

from convbench.store.env import environment
from convbench.store.sqlite import SCHEMA_VERSION, Store, StoreError

__all__ = ["SCHEMA_VERSION", "Store", "StoreError", "environment"]
