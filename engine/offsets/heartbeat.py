"""Heartbeats as MM2's heartbeat connector emits them (docs/design.md, 'Heartbeat').

Every `emit.heartbeats.interval.seconds` a Heartbeat(source, target, now) record goes to partition
0 of `heartbeats` on the target. Flows replicate `heartbeats` topics downstream
(`A.heartbeats`, `B.A.heartbeats`, ...), which is how MM2's MirrorClient sees upstream clusters
and counts hops, and how a flow's liveness and latency can be read on its target.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from confluent_kafka import Producer

from engine.clients import DeliveryTally, client_config, track
from engine.config.model import ClusterConfig, HeartbeatConfig
from engine.offsets import wire
from engine.offsets.policy import HEARTBEATS_TOPIC


class HeartbeatEmitter:
    """The heartbeats of every pair whose target is one cluster, through one producer."""

    def __init__(self, target: ClusterConfig, pairs: list[HeartbeatConfig],
                 clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
                 active: Callable[[], bool] = lambda: True):
        self.target = target
        self.active = active  # scale-out: only the instance leading the group emits
        self.pairs = pairs
        self.clock_ms = clock_ms
        self.tally = DeliveryTally(f"heartbeat into {HEARTBEATS_TOPIC} on cluster {target.alias}")
        self.producer = track(target.alias, Producer(client_config(
            target, f"{target.alias}|MirrorHeartbeatConnector|heartbeats-producer",
            **{"acks": "all", "linger.ms": 0, "on_delivery": self.tally},
        )))

    @property
    def sent(self) -> int:
        return self.tally.sent

    def emit(self, pair: HeartbeatConfig) -> None:
        beat = wire.Heartbeat(pair.source, pair.target, self.clock_ms())
        self.producer.produce(HEARTBEATS_TOPIC, key=beat.key(), value=beat.value(), partition=0,
                              timestamp=beat.timestamp_ms)
        self.producer.poll(0)

    async def run(self) -> None:
        due = {pair: 0.0 for pair in self.pairs}
        while True:
            now = time.monotonic()
            for pair, at in due.items():
                if now >= at:
                    if self.active():
                        self.emit(pair)
                    due[pair] = now + pair.interval_s
            await asyncio.sleep(max(0.05, min(due.values()) - time.monotonic()))

    def close(self) -> None:
        self.producer.flush(5)
