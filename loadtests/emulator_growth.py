"""Does the Firestore emulator's cost of a write grow with the document's earlier writes?

Writes batches of 1,000 to one document again and again (a usage document's shape: increments,
and a plain document replaced), and the same shape to a new document each time, and prints the
wall time and the emulator's CPU per write for each batch. The emulator keeps every version of a
document, so its cost per write to one document grows batch after batch while the new documents
stay flat: a benchmark that makes every call as one user measures that growth, which no user's
documents see at the rate limits' rates (``scripts/bench.py`` rotates over a pool of users).

    WITH_EMULATORS_ONLY=auth,firestore scripts/with-emulators.sh \\
        .venv/bin/python -m loadtests.emulator_growth [--batches 8] [--size 1000]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]

from loadtests.stack import cpu_seconds, firestore_emulator_pid  # noqa: E402
from scripts.devkit.emulator import require_emulators  # noqa: E402
from stores.base import Inc, Write  # noqa: E402
from stores.firestore import FirestoreStore, make_client  # noqa: E402


def usage_doc() -> dict[str, Any]:
    """A per-user usage document as one enrichment updates it (seven increments)."""
    return {
        "uid": "growth",
        "totals": {"requests": Inc(1), "successful": Inc(1), "full": Inc(1)},
        "bySource": {"linkedin": {"requests": Inc(1), "successful": Inc(1)}},
        "durationMsSum": Inc(9.0),
        "durationCount": Inc(1),
        "lastUsedAt": datetime.now(UTC),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--size", type=int, default=1000, help="writes per batch")
    args = parser.parse_args()
    require_emulators()
    store = FirestoreStore(make_client())
    pid = firestore_emulator_pid()
    if pid is None:
        print("the Firestore emulator's process was not found: its CPU cannot be read")
        return 1
    same = f"external_data_usage/growth-{uuid.uuid4().hex}"
    plain = f"bench/growth-{uuid.uuid4().hex}"
    kinds: dict[str, Callable[[int], None]] = {
        "increments, one document": lambda i: store.commit([Write(same, usage_doc())]),
        "replaced, one document": lambda i: store.commit(
            [Write(plain, {"n": i, "at": datetime.now(UTC)}, merge=False)]
        ),
        "increments, a new document each": lambda i: store.commit(
            [Write(f"external_data_usage/growth-{uuid.uuid4().hex}", usage_doc())]
        ),
    }
    print(f"{args.batches} batches of {args.size} writes of each kind, in turn")
    print(
        "| batch | writes to one document before it | kind | wall ms per write | emulator CPU ms per write |"
    )
    print("|---|---|---|---|---|")
    for batch in range(args.batches):
        for name, write in kinds.items():
            cpu, started = cpu_seconds(pid), time.perf_counter()
            for i in range(args.size):
                write(i)
            wall = (time.perf_counter() - started) * 1000 / args.size
            used = (cpu_seconds(pid) - cpu) * 1000 / args.size
            print(f"| {batch + 1} | {batch * args.size} | {name} | {wall:.2f} | {used:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
