"""Scale-out: instances that share one `mirror.engine.group.id` share the partitions.

The approach, on Kafka's own group protocol (confluent-kafka has no custom assignor):

- Each coordinator joins the consumer group `<group.id>` on every target cluster of its flows, with
  a consumer subscribed to the flows' *remote* topics there and `cooperative-sticky` assignment.
  A remote partition assigned to an instance is its right to copy the source partition(s) that
  replicate into it (a remote topic has the source topic's partitions, one to one). The consumer
  never reads: every partition is paused the moment it is assigned.
- Cooperative-sticky moves only what must move to even out the partition counts, and in two
  steps: a partition is first revoked from its owner, which returns from the revocation only
  after its workers drained it and stored its progress; only the next rebalance gives it to the
  new owner, whose worker resumes at that stored progress. A revoked partition is therefore never
  copied by two instances at once, and a moved partition starts where the old owner stopped.
- An instance that loses its membership (its session timed out: it was frozen, or cut off from
  the group coordinator) stops its partitions the moment it notices; while it does not notice,
  its workers stop copying by themselves when their lease runs out (see Lease in engine.ipc),
  which is shorter than the session timeout: the new owner starts after the old one went silent.
- The owner of a group's smallest partition leads it: it alone runs the checkpoints, group offset
  sync, topic-config and ACL sync of the flows into that cluster, and emits its heartbeats.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from engine.clients import client_config
from engine.config.model import ClusterConfig

log = logging.getLogger(__name__)

Partition = tuple[str, int]  # (remote topic, partition)

POLL_S = 0.5
STATS_INTERVAL_MS = 1000
# a rebalance callback waits this long for the workers to drain before it gives up
HANDOVER_TIMEOUT_S = 120.0


class Membership:
    """One instance's membership of the group on one target cluster: which remote partitions it owns.

    `topics()` gives the remote topics to subscribe to (read again every poll); `on_change(revoked)`
    runs on the event loop after each change of the owned set, and must have stopped the revoked
    partitions, with their progress stored, when it returns.
    """

    def __init__(self, target: ClusterConfig, group_id: str, session_timeout_ms: int,
                 topics: Callable[[], set[str]], partitions: Callable[[], set[Partition]],
                 on_change: Callable[[set[Partition]], Coroutine[Any, Any, None]]):
        self.target = target
        self.group_id = group_id
        self.session_timeout_ms = session_timeout_ms
        self.topics = topics
        self.partitions = partitions  # every remote partition the group's flows copy into
        self.on_change = on_change
        self.owned: set[Partition] = set()
        self.instance_id = uuid.uuid4().hex[:12]  # this run of this instance, in its workers' transactional ids
        self.joined = False  # a first assignment (maybe empty) arrived
        self.stopping = False
        self._subscribed: list[str] = []
        self._healthy_at: float | None = None  # monotonic: the group state was last seen "up"
        self._stats_at: float | None = None  # monotonic: the previous statistics
        self._in_callback = False  # an assign or revoke callback runs: the session is kept meanwhile
        # monotonic: since when the partitions may be someone else's (the process stood still for
        # half a session, or the session was lost), whatever librdkafka says before it notices
        self._doubted_since: float | None = None
        # the session was lost while in doubt: the next assignment comes from a rejoin and ends the doubt
        # (an assignment before that may be librdkafka's own, of a session the broker already expired)
        self._rejoining = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.consumer = Consumer(client_config(target, f"mirror-engine|{group_id}|membership", **{
            "group.id": group_id,
            "partition.assignment.strategy": "cooperative-sticky",
            "session.timeout.ms": session_timeout_ms,
            "heartbeat.interval.ms": max(500, session_timeout_ms // 4),
            "enable.auto.commit": False,
            "auto.offset.reset": "latest",
            # new remote topics join the subscription soon after they are created
            "topic.metadata.refresh.interval.ms": 5000,
            "statistics.interval.ms": STATS_INTERVAL_MS,
            "stats_cb": self._on_stats,
        }))

    # -- what the coordinator asks -------------------------------------------------------------

    def owns(self, remote_topic: str, partition: int) -> bool:
        return (remote_topic, partition) in self.owned

    def leads(self) -> bool:
        """Owns the group's smallest partition; with no partition at all, every member leads."""
        every = self.partitions()
        return not every or min(every) in self.owned

    def healthy(self) -> bool:
        """The workers may go on copying: the group state was 'up' within the last half session
        timeout and the membership is not in doubt, or an assign or revoke callback runs.

        In doubt after a standstill of half a session or a lost session: until the assignment of the
        rejoin after a lost session, or until a whole session passed without the group saying
        otherwise (the next heartbeat would have told a member that was thrown out)."""
        now = time.monotonic()
        if self._doubted_since is not None:
            if now - self._doubted_since < self.session_timeout_ms / 1000:
                return False
            self._doubted_since = None
        if self._in_callback:
            return True
        return self._healthy_at is not None and now - self._healthy_at < self.session_timeout_ms / 2000

    # -- running -------------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._resubscribe()
        self._thread = threading.Thread(target=self._poll_forever, name=f"membership-{self.target.alias}",
                                        daemon=True)
        self._thread.start()

    async def close(self) -> None:
        """Leaves the group: the other instances take over at once. Called after the workers stopped."""
        self.stopping = True
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        await asyncio.to_thread(self.consumer.close)

    def _poll_forever(self) -> None:
        while not self.stopping:
            self._resubscribe()
            message = self.consumer.poll(POLL_S)
            error = message.error() if message is not None else None
            if error is not None:
                level = logging.DEBUG if error.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART,
                                                          KafkaError._PARTITION_EOF) else logging.WARNING
                log.log(level, "group %s on cluster %s: %s", self.group_id, self.target.alias, error.str())

    def _resubscribe(self) -> None:
        wanted = sorted(self.topics())
        if wanted == self._subscribed:
            return
        self._subscribed = wanted
        if not wanted:
            # no remote topic yet: still a member, so that leadership and the heartbeats are decided
            wanted = [f"^{self.group_id}\\.nothing-to-copy$"]
        self.consumer.subscribe(wanted, on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_lost)

    # -- rebalance callbacks: on the poll thread; the workers are changed on the event loop ----

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._rejoining:
            self._doubted_since, self._rejoining = None, False  # a member again
        consumer.incremental_assign(partitions)
        if partitions:
            consumer.pause(partitions)  # membership only: nothing is ever fetched
        added = {(tp.topic, tp.partition) for tp in partitions}
        self.owned |= added
        self.joined = True
        if added:
            log.info("group %s on cluster %s: %d partitions assigned to this instance (%d owned): %s",
                     self.group_id, self.target.alias, len(added), len(self.owned), _names(added))
        self._hand_over(set())

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        self._give_up(revoked, "revoked")
        consumer.incremental_unassign(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        lost = {(tp.topic, tp.partition) for tp in partitions}
        log.error("group %s on cluster %s: this instance lost its membership (session timed out); its %d "
                  "partitions are stopped and owned by others now", self.group_id, self.target.alias, len(lost))
        self._doubted_since, self._rejoining = time.monotonic(), True
        self._give_up(lost, "lost", keeps_session=False)
        consumer.incremental_unassign(partitions)

    def _give_up(self, partitions: set[Partition], how: str, keeps_session: bool = True) -> None:
        if not partitions:
            return
        self.owned -= partitions
        log.info("group %s on cluster %s: %d partitions %s; draining them before they move: %s",
                 self.group_id, self.target.alias, len(partitions), how, _names(partitions))
        self._hand_over(partitions, keeps_session)

    def _hand_over(self, revoked: set[Partition], keeps_session: bool = True) -> None:
        """Runs on_change on the event loop and waits for it: the rebalance goes on only after."""
        if self.stopping or self._loop is None:
            return  # shutting down: the workers stop and store their progress anyway
        self._in_callback = keeps_session
        future = asyncio.run_coroutine_threadsafe(self.on_change(revoked), self._loop)
        try:
            future.result(HANDOVER_TIMEOUT_S)
        except Exception as error:  # the next rebalance or refresh retries; never kill the poll thread
            log.error("group %s on cluster %s: applying the new assignment failed: %r", self.group_id,
                      self.target.alias, error)
        finally:
            self._in_callback = False
            # no statistics were served meanwhile: a standstill counts from here (never from None:
            # a freeze right after a callback would then go unnoticed)
            self._stats_at = time.monotonic()

    def noticed_standstill(self, seconds: float) -> None:
        """The process stood still this long (seen by the poll thread's statistics, or by the event
        loop's own ticks, which also see a standstill in the middle of a rebalance callback)."""
        if seconds <= self.session_timeout_ms / 2000:
            return
        # the broker may have expired the session (it counts from the last heartbeat, before the standstill)
        log.error("group %s on cluster %s: this instance stood still for %.1fs; its workers copy again once it "
                  "is sure of its membership", self.group_id, self.target.alias, seconds)
        self._doubted_since = time.monotonic()

    def _on_stats(self, stats_json: str) -> None:
        now = time.monotonic()
        if self._stats_at is not None:
            self.noticed_standstill(now - self._stats_at)
        self._stats_at = now
        group = json.loads(stats_json).get("cgrp") or {}
        if group.get("state") == "up":
            self._healthy_at = now


def _names(partitions: set[Partition]) -> str:
    return ", ".join(f"{topic}[{partition}]" for topic, partition in sorted(partitions))
