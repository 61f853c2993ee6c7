"""The gating library: who may enrich, how often, and what is recorded.

Nothing in this package imports ``firebase_functions``; the entrypoints in ``main.py`` do that.
"""
