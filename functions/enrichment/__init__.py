"""Enrichment engine: fetches GitHub, LinkedIn export, personal website and web search data
concurrently under one deadline, caches it, redacts it and merges skills and projects.

Never imports the gating library or ``firebase_functions``: the callable layer calls
``Engine.enrich`` and stores ``result.data``.
"""

from .cache import CacheEntry, CacheStore, FirestoreCacheStore, MemoryCacheStore
from .engine import Engine, utcnow
from .errors import ErrorCode
from .model import EnrichmentInput, EnrichmentResult, SourceError, SourceReport
from .settings import SOURCES, EnrichmentSettings

__all__ = [
    "SOURCES",
    "CacheEntry",
    "CacheStore",
    "Engine",
    "EnrichmentInput",
    "EnrichmentResult",
    "EnrichmentSettings",
    "ErrorCode",
    "FirestoreCacheStore",
    "MemoryCacheStore",
    "SourceError",
    "SourceReport",
    "utcnow",
]
