"""The module functions-framework serves during load runs: ``functions/main.py`` as it is, with
one optional change made from here (never in ``functions/``): when ``LOADTEST_COUNT_DIR`` is
set, ``stores.firestore.FirestoreStore`` is replaced by a counting subclass *before* ``main``
builds its application, so every read and write of the real hot path (limiter, caches, engine
cache, recorder) is counted per worker process.
"""

from __future__ import annotations

from stores import transport  # noqa: F401 - first, as in main.py: gRPC's transport

# isort: split

import os

if os.environ.get("LOADTEST_COUNT_DIR"):
    import stores.firestore
    from loadtests.counting import counting_store_class

    stores.firestore.FirestoreStore = counting_store_class(  # type: ignore[misc]
        stores.firestore.FirestoreStore, os.environ["LOADTEST_COUNT_DIR"]
    )

if os.environ.get("LOADTEST_SAMPLE_DIR"):
    from loadtests.sampler import Sampler

    _sampler = Sampler(os.environ["LOADTEST_SAMPLE_DIR"])
    # gunicorn forks its workers after importing this module: sample in each worker only.
    os.register_at_fork(after_in_child=_sampler.ensure_started)

if os.environ.get("LOADTEST_KEEPALIVE_S"):
    # A load client that reuses a connection the server has just closed sees a reset that a
    # browser behind Google's front end never would (``common.serving``).
    from common import serving

    serving.keep_alive(int(os.environ["LOADTEST_KEEPALIVE_S"]))

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
