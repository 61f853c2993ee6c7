"""The gating policy: entitlement, rollout config and cohort, the access decision, the
sliding-window rate limit and preview trimming. Pure functions of what was read, plus the
limiter's atomic counters. Never imports ``firebase_functions``, the use cases or recording.
"""
