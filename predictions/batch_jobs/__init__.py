"""Batch scoring jobs: create, plan into chunks, score the chunks, finish, cancel, watch over.

Lifecycle. ``batch_job_create`` stores a queued job (the active model version is fixed then) and
enqueues ``batch_job_start``, which plans the chunks (customer-pk ranges, pk lists or file parts)
and sends one task per chunk as a Celery group. ``batch_chunk_score`` writes a chunk's
predictions and marks the chunk done in one transaction under a lock on the chunk row, so a
redelivered or duplicated chunk finds it done and writes nothing; the unique (job, customer_id)
index makes the database refuse a second prediction anyway. The chunk that completes the set
enqueues ``batch_job_finish``: final status, per-worker throughput, the results file, the audit
entry and the ``batch_job_finished`` signal. ``batch_jobs_watchdog`` (beat every minute, and
each worker without beat: churn_platform.celery.Watchdogs) re-sends chunks whose messages were
lost and finishes jobs whose last follow-up was lost. A chunk's liveness is its row lock, held by
the scoring transaction for the whole work and released by PostgreSQL as soon as the worker's
connection drops: running, unlocked and started over BATCH_CHUNK_STALE_SECONDS (60) ago is lost.

Lock order: chunk row, then job row (the chunk's counters). Nothing locks them the other way
round except with SKIP LOCKED, so no two of these transactions can deadlock.

Where each part lives: :mod:`.create` (scope checks, upload sniffing, ``batch_job_create``),
:mod:`.plan` (``batch_job_start``: chunks planned and sent), :mod:`.dispatch` (the Celery sends),
:mod:`.score` (``batch_chunk_score``, ``batch_chunk_fail``), :mod:`.results` (result rows and the
results file), :mod:`.finish` (``batch_job_finish``), :mod:`.operator_actions` (cancel, resume,
the scheduled full scoring), :mod:`.watchdog` (``batch_jobs_watchdog``), :mod:`.common` (errors,
open chunk statuses).
"""
