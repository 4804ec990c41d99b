"""Benchmarks of ProPETL against HF PEFT on the same backbone, data and machine."""
