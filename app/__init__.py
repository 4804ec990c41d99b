"""ProPETL Studio: the dashboard, registry and job queue around the `propetl` engine."""
