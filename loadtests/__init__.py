"""Load tests of the real function entrypoints served production-like (issue 11).

``python -m loadtests.run --profile short|plan|peak5x|burst|step|faults|soak|hundred``
(``make load``) starts the stack (``stack.py``), seeds users (``seed.py``), drives Locust
(``locustfile.py``), checks that nothing was lost (``check.py``) and writes
``docs/benchmarks/load-*.md`` (``report.py``). Where the time goes: ``sampler.py`` (wall clock,
every request thread) and ``gil_profile.py`` (py-spy, the thread holding each worker's GIL).
"""
