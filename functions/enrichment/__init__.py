"""Enrichment engine: fetches GitHub, LinkedIn export, personal website and web search data
concurrently under one deadline, caches it, redacts it and merges skills and projects.

Never imports the gating library or ``firebase_functions``: the callable layer calls
``Engine.enrich`` and stores ``result.data``.
"""

from common.settings import EnrichmentSettings
from common.vocab import SOURCES

from .cache import CacheEntry, CacheStore, MemoryCacheStore, StoreCacheStore
from .engine import Engine, utcnow
from .errors import ErrorCode
from .model import EnrichmentInput, EnrichmentResult, SourceError, SourceReport

__all__ = [
    "SOURCES",
    "CacheEntry",
    "CacheStore",
    "Engine",
    "EnrichmentInput",
    "EnrichmentResult",
    "EnrichmentSettings",
    "ErrorCode",
    "MemoryCacheStore",
    "SourceError",
    "SourceReport",
    "StoreCacheStore",
    "utcnow",
]
