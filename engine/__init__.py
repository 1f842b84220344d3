"""mirror-engine: Kafka cluster-to-cluster replication, MirrorMaker 2 compatible."""

__version__ = "0.1.0"
