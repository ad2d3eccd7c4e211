"""The kernel of the tweet tone analyzer: what every stage shares.

Settings, errors, labels, text, the tweet and scored-tweet formats (``events``), Kafka clients
(``kafka/``), scorers (``scoring/``), per-user aggregates and their stores (``aggregates/``), the model registry,
datasets and AWS clients. It imports no stage (``producer``, ``streaming``, ``serving``, ``model_training``) and
nothing above them; the `tone` CLI lives in ``tone_cli``, the local stack in ``devstack``.

Nothing heavy is imported here (no torch, transformers, pyspark or sagemaker): `tone --help` must stay instant.
"""

__version__ = "0.1.0"
