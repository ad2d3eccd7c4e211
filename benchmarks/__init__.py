"""Dev tooling, never shipped: scorer throughput, the whole-path replay and its predict_batch_udf reference.

Modules: ``scorers`` (`tone bench scorers`), ``replay`` (`tone bench replay`) and ``reference`` (Spark's
``predict_batch_udf`` pattern, the replay's comparison). Figures go in docs/benchmarks.md.
"""
