"""Celery task bodies that run ProPETL jobs and write their results to the registry.

Start a worker with `propetl worker` (or `celery -A worker.celery_app worker`).
"""
