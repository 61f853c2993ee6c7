"""The use cases behind the functions, one module each, read top to bottom:

- ``enrich``      ``enrichCVWithExternalData`` (contract 2.1): the gated hot path
- ``track``       ``trackExternalDataUsage`` (2.2): client funnel events
- ``stats``       ``getUserExternalDataUsageStats`` (2.3)
- ``analytics``   ``getExternalDataAnalytics`` (2.4), admins only
- ``conversions`` the ``users/{uid}`` trigger that records conversions (section 5)

Each callable use case is ``run(app, caller, raw) -> answer``: ``hooks.handle`` wraps its body
and records, audits, logs and maps whatever it returns or raises. ``app.App`` holds the
instance's long-lived parts (store, engine, limiters, caches, config source).
"""
