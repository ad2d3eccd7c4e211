"""The one home for Kafka clients (like quix-streams' ``kafka/``): every client of the project is built here.

- ``config``: one connection model (:class:`~tone.kafka.config.KafkaConnection`) that renders kafka-python,
  librdkafka and Spark options, and the one table of producer defaults;
- ``clients``: the idempotent producers with delivery reports (librdkafka, for the replay producer and the Spark
  workers alike; kafka-python only where confluent-kafka has no wheel) and the consumer-group offset committer;
- ``admin``: topic creation and deletion;
- ``readers``: partition offsets and offset-range reads, one implementation per client behind ``RangeReader``.

The Kafka libraries themselves are imported inside the functions that use them.
"""
