"""The module functions-framework serves during load runs: ``functions/main.py`` as it is, with
one optional change made from here (never in ``functions/``): when ``LOADTEST_COUNT_DIR`` is
set, ``stores.firestore.FirestoreStore`` is replaced by a counting subclass *before* ``main``
builds its application, so every read and write of the real hot path (limiter, caches, engine
cache, recorder) is counted per worker process.
"""

from __future__ import annotations

import os

if os.environ.get("LOADTEST_COUNT_DIR"):
    import stores.firestore
    from loadtests.counting import counting_store_class

    stores.firestore.FirestoreStore = counting_store_class(  # type: ignore[misc]
        stores.firestore.FirestoreStore, os.environ["LOADTEST_COUNT_DIR"]
    )

from main import (
    enrichCVWithExternalData,
    getExternalDataAnalytics,
    getUserExternalDataUsageStats,
    trackExternalDataUsage,
)

__all__ = [
    "enrichCVWithExternalData",
    "getExternalDataAnalytics",
    "getUserExternalDataUsageStats",
    "trackExternalDataUsage",
]
