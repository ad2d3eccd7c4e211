"""The `tone` command: one module per command group, one place that turns errors into exit codes (`_errors.py`).

Sits on top of every stage. Command modules import only typer and rich at import time: `tone --help` loads them
all, and must stay instant; the stages (and torch, pyspark, ...) are imported inside the commands that need them.
"""
