"""The domain event of an erasure, for the apps above customers (predictions, campaigns).

customers may not import them (the layer order), so `customer_erase` sends `customer_erased` and
their receivers, connected in their AppConfig.ready(), erase their own rows. Unlike the other
domain events it is sent inside the erasing transaction, not after commit: an erasure must be
complete or not happen at all, so a receiver that fails rolls the whole erasure back.

Arguments: customer_pk (int), customer_id (str). A receiver returns {what: rows changed}; the
counts go into the audit entry (never the values erased).
"""

from __future__ import annotations

from django.dispatch import Signal

customer_erased = Signal()
