"""The rollout control plane: config changes with history, phase advance, rollback, evaluator.

- ``changes``   every write of ``config/externalDataRollout`` (compare-and-set + history entry)
- ``plan``      the phases, their default settings and the gradual-rollback ladder
- ``health``    a phase's success metrics over its monitoring window (hour aggregates)
- ``evaluator`` automatic rollback over the minute aggregates (what the scheduled function runs)

Never imports ``firebase_functions``: the CLI (``scripts/rollout.py``) and the scheduled function
in ``main.py`` are thin shells over these modules.
"""
