"""The one home for Kafka clients (like quix-streams' ``kafka/``): every client of the project is built here.

- ``config``: one connection model (:class:`~tone.kafka.config.KafkaConnection`) that renders kafka-python,
  librdkafka and Spark options, and the one table of producer defaults;
- ``clients``: the producers (kafka-python for the replay producer, librdkafka for the Spark workers);
- ``admin``: topic creation and deletion;
- ``readers``: partition offsets and offset-range reads, one implementation per client behind ``RangeReader``.

The Kafka libraries themselves are imported inside the functions that use them.
"""
