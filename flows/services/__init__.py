"""The plain services of exports, apart from the Prefect flows that call them: submission (preflight, tool tree,
insert), status transitions, the queue, views, delivery retries. Nothing here imports Prefect, so `api/` reads
and writes rows through this package without importing orchestration (`tests/test_architecture.py`)."""
