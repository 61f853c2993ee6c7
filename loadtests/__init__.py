"""Load tests of the real function entrypoints served production-like (issue 11).

``python -m loadtests.run --profile short|plan|peak5x|step|faults|soak`` (``make load``) starts
the stack (``stack.py``), seeds users (``seed.py``), drives Locust (``locustfile.py``), checks
that nothing was lost (``check.py``) and writes ``docs/benchmarks/load-*.md`` (``report.py``).
"""
