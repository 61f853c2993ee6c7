"""The long fuzz profile: ``HYPOTHESIS_PROFILE=fuzz .venv/bin/python -m pytest tests/fuzz -q``.

Without that variable nothing here is collected (``make test`` runs the same checks with the
fast profile under ``tests/unit``). ``FUZZ_EXAMPLES`` sets the examples per test (default
12,500: 10 tests, 125,000 examples in all).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "12500")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)

if os.environ.get("HYPOTHESIS_PROFILE") == "fuzz":
    settings.load_profile("fuzz")
    collect_ignore_glob: list[str] = []
else:
    collect_ignore_glob = ["test_*.py"]
