"""Celery app and training tasks: a thin shell around models/<family> (arrives with the training issue)."""
