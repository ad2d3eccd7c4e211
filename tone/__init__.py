"""Shared core of the tweet tone analyzer: settings, the tweet schema, the local stack and the `tone` CLI.

Nothing heavy is imported here (no torch, transformers, pyspark or sagemaker): `tone --help` must stay instant.
"""

__version__ = "0.1.0"
