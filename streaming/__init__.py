"""Stream stage: the Spark Structured Streaming job (Kafka -> validate -> score -> Redis). Built in issue 4."""
