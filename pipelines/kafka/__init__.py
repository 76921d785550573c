"""Kafka: publishing streams, consuming a topic's streams, highlight events out."""
