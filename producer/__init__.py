"""Producer stage: replays tweets from files (or a live feed) into Kafka, keyed by user id."""
