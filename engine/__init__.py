"""mirror-engine: Kafka cluster-to-cluster replication, MirrorMaker 2 compatible."""

# before anything imports engine._fastpath: its librdkafka symbols resolve against this library
from engine import librdkafka as _librdkafka  # noqa: F401

__version__ = "0.1.0"
