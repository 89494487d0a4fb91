"""Benchmarks: each figure measured in the same run against its floor (bare Celery, raw Redis
Streams, the scanners run directly). ``make bench`` runs them; see bench/README.md."""
