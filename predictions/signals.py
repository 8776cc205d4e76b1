"""Signals other apps can listen to without predictions importing them."""

from __future__ import annotations

from django.dispatch import Signal

batch_job_finished = Signal()
"""Sent once when a batch job reaches a final status, after its transaction commits.

Keyword argument ``job``: the BatchJob. Its predictions with ``risk_increased=True`` are the
customers whose risk level rose since their previous prediction (see the README).
"""

predictions_expiring = Signal()
"""Sent by retention inside the transaction that removes predictions, before they go.

Keyword argument ``predictions``: a queryset of the predictions about to be removed (a whole
monthly partition, or a batch of rows). The table's incoming foreign keys carry no database
constraint (a partitioned table can only be referenced by its whole primary key), and a dropped
partition runs no ORM ``on_delete``: a receiver clears its own references to these rows and
returns ``{what: rows changed}``, which goes into the retention's audit entry. A receiver that
fails rolls the removal back.
"""
