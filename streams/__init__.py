"""creditline stream processors: Kafka events folded into live per-user credit state in Redis."""

__version__ = "0.1.0"
