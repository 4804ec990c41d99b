"""Celery task bodies that run ProPETL jobs and write their results to the registry."""
