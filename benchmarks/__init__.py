"""symgraph's benchmarks (issue 4, points 7-8): `make bench` runs `benchmarks/run.py`.

A package so that tests/test_benchmarks_smoke.py can import each workload's correctness check;
never collected by `make test` (pytest only looks under tests/).
"""
