"""Storage behind small protocols: a Firestore implementation and an in-memory twin."""

from stores.base import DocumentStore, Inc, Write

__all__ = ["DocumentStore", "Inc", "Write"]
