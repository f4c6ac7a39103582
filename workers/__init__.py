"""Celery app and training tasks: a thin shell around models/<family> (each family's training module)."""
