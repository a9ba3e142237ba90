"""The local stack: a real single-node Apache Kafka (KRaft, jars from Maven Central) and a
real ``redis-server``, both on loopback, started and stopped by ``creditline up``/``down``."""

from streams.devtools.stack.local import LocalStack, StackError

__all__ = ["LocalStack", "StackError"]
