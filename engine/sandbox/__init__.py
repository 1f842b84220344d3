"""Local Apache Kafka KRaft clusters fetched and run by the project itself."""

from engine.sandbox.cluster import KafkaCluster, SaslSettings
from engine.sandbox.distribution import KAFKA_VERSION, SandboxError, kafka_libs

__all__ = ["KAFKA_VERSION", "KafkaCluster", "SaslSettings", "SandboxError", "kafka_libs"]
