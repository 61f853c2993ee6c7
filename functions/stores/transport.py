"""gRPC's transport for the store, chosen before grpcio is imported. Import this module first.

grpcio 1.85 sends and receives a client's calls through its EventEngine by default: the socket
is served by EventEngine threads, and a thread that waits for an answer is woken by them. With
the ``event_engine_client`` experiment turned off, grpcio uses its older I/O manager, where the
waiting thread polls the socket itself. Measured on this emulator (docs/benchmarks/
load-overview.md): a read and an increment in flight together took p50 0.66-0.86x and 0.72-0.93x
the process CPU in four alternating process pairs; in three alternating pairs of the bench's hot
path, the whole warm call's p50 was 0.90x and its CPU 0.85x, its p95 unchanged (a bare write
gained as much, so the bench's ratio to a bare write did not improve).

grpcio reads ``GRPC_EXPERIMENTS`` once, when it starts; this module sets it only if the
operator has not (an operator's own value is kept, whatever it says), and only while grpcio is
not yet imported. ``APPLIED`` says whether the process runs with this module's choice.
``main.py`` imports this module before anything else and logs a warning when it came too late.
"""

from __future__ import annotations

import os
import sys

EXPERIMENTS = "-event_engine_client"
"""The value set: grpcio's EventEngine client off (its older I/O manager instead)."""

OPERATOR_SET = "GRPC_EXPERIMENTS" in os.environ
"""The operator chose gRPC's experiments themselves (their value is kept)."""

TOO_LATE = "grpc" in sys.modules
"""grpcio was imported before this module: the choice could not be made."""

APPLIED = not OPERATOR_SET and not TOO_LATE
"""grpcio will start with ``EXPERIMENTS``."""

if APPLIED:
    os.environ["GRPC_EXPERIMENTS"] = EXPERIMENTS
