"""Adapters: the only code that talks to Redis and Kafka."""
