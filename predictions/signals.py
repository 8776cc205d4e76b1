"""Signals other apps can listen to without predictions importing them."""

from __future__ import annotations

from django.dispatch import Signal

batch_job_finished = Signal()
"""Sent once when a batch job reaches a final status, after its transaction commits.

Keyword argument ``job``: the BatchJob. Its predictions with ``risk_increased=True`` are the
customers whose risk level rose since their previous prediction (see the README).
"""
