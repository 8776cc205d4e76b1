"""Plain-Python machine-learning core of the churn platform.

Nothing in this package may import Django, DRF or Celery: the web apps are thin adapters
around it, and an import-linter contract plus a test keep that boundary.
"""
