"""Writes MM2 offset syncs (docs/design.md, 'Offset sync') that the fast path found due.

Partition 0 of `mm2-offset-syncs.<other>.internal`, MM2's bytes, no headers. Java MM2's checkpoint
task reads them, so a mirror-engine flow can be followed by MM2's own offset translation.
A failed write is logged, never fatal: the next due sync for the partition supersedes it.
"""

from __future__ import annotations

import logging

from confluent_kafka import KafkaException, Producer

from engine.clients import DeliveryTally, client_config
from engine.offsets import wire

log = logging.getLogger(__name__)


class OffsetSyncWriter:
    def __init__(self, topic: str, cluster_client: dict[str, str], client_id: str):
        self.topic = topic
        self.tally = DeliveryTally(f"offset sync to {topic}")
        self.producer = Producer(client_config(cluster_client, client_id, **{
            "acks": "all", "linger.ms": 5, "enable.idempotence": True, "on_delivery": self.tally,
        }))

    def send(self, syncs: list[tuple[str, int, int, int]]) -> None:
        for topic, partition, upstream, downstream in syncs:
            sync = wire.OffsetSync(topic, partition, upstream, downstream)
            try:
                self.producer.produce(self.topic, key=sync.key(), value=sync.value(), partition=0)
            except KafkaException as error:
                # refused at once (e.g. the topic is known to be unauthorised): a failed write too
                self.tally(error.args[0], None)
        self.producer.poll(0)

    def flush(self, timeout_s: float = 10.0) -> None:
        if self.producer.flush(timeout_s):
            log.warning("offset syncs to %s unacknowledged after %.0fs", self.topic, timeout_s)
