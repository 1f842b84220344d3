"""Scale-out without brokers: what a membership owns and leads, when its workers may copy, and the
configuration keys (how a move is ordered between workers: test_worker_pool.py)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from confluent_kafka import TopicPartition

from engine.config.loading import from_properties
from engine.config.model import ClusterConfig
from engine.config.values import ConfigError
from engine.coordinator.membership import Membership
from engine.worker.loop import Lease

SESSION_MS = 6000


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeConsumer:
    def __init__(self) -> None:
        self.assigned: list[tuple[str, int]] = []
        self.paused: list[tuple[str, int]] = []

    def incremental_assign(self, partitions):
        self.assigned += [(tp.topic, tp.partition) for tp in partitions]

    def incremental_unassign(self, partitions):
        gone = {(tp.topic, tp.partition) for tp in partitions}
        self.assigned = [tp for tp in self.assigned if tp not in gone]

    def pause(self, partitions):
        self.paused += [(tp.topic, tp.partition) for tp in partitions]


def membership(every: set[tuple[str, int]]) -> Membership:
    return Membership(ClusterConfig("B", "127.0.0.1:1"), "mirrors", SESSION_MS, topics=lambda: {t for t, _ in every},
                      partitions=lambda: every, on_change=None)


def test_assigned_partitions_are_owned_paused_and_the_owner_of_the_smallest_leads():
    every = {("A.orders", p) for p in range(4)}
    member, consumer = membership(every), FakeConsumer()
    assert not member.owns("A.orders", 1) and not member.leads()
    member._on_assign(consumer, [TopicPartition("A.orders", 1), TopicPartition("A.orders", 3)])
    assert member.owns("A.orders", 1) and member.owns("A.orders", 3) and not member.owns("A.orders", 0)
    assert consumer.paused == [("A.orders", 1), ("A.orders", 3)], "a membership never fetches"
    assert not member.leads()  # A.orders[0] is someone else's
    member._on_assign(consumer, [TopicPartition("A.orders", 0)])
    assert member.leads()
    member._on_revoke(consumer, [TopicPartition("A.orders", 0), TopicPartition("A.orders", 1)])
    assert member.owned == {("A.orders", 3)} and consumer.assigned == [("A.orders", 3)] and not member.leads()
    member._on_lost(consumer, [TopicPartition("A.orders", 3)])
    assert member.owned == set() and consumer.assigned == []
    assert membership(set()).leads(), "with nothing to copy every member leads (heartbeats go on)"


def test_the_membership_is_healthy_only_while_the_group_state_is_up_and_never_in_doubt(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr("engine.coordinator.membership.time.monotonic", clock)
    up = json.dumps({"cgrp": {"state": "up"}})
    member = membership({("A.orders", 0)})
    assert not member.healthy()
    member._on_stats(up)
    assert member.healthy()
    clock.now += SESSION_MS / 2000 + 0.1
    assert not member.healthy(), "no word of the group for half a session: the lease is not renewed"
    member._on_stats(json.dumps({"cgrp": {"state": "wait-coord"}}))
    assert not member.healthy()

    clock.now += SESSION_MS / 2000 + 0.1  # a standstill (SIGSTOP) of more than half a session
    member._on_stats(up)
    assert not member.healthy(), "the broker may have expired the session: in doubt"
    member._on_assign(FakeConsumer(), [])
    assert not member.healthy(), "an assignment before librdkafka heard of the expiry proves nothing"
    member._in_callback = True
    assert not member.healthy(), "not even while a callback runs"
    member._in_callback = False
    for _ in range(int(SESSION_MS / 1000)):
        clock.now += 1
        member._on_stats(up)
    assert member.healthy(), "a whole session without being thrown out: still a member after all"

    member._on_assign(FakeConsumer(), [TopicPartition("A.orders", 0)])
    member._on_lost(FakeConsumer(), [TopicPartition("A.orders", 0)])
    member._on_stats(up)
    assert not member.healthy(), "after a lost session nothing is copied until the next assignment"
    member._on_assign(FakeConsumer(), [])
    assert member.healthy()


def test_a_standstill_right_after_a_rebalance_callback_puts_the_membership_in_doubt(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr("engine.coordinator.membership.time.monotonic", clock)
    up = json.dumps({"cgrp": {"state": "up"}})
    member = membership({("A.orders", 0)})
    member._loop = SimpleNamespace()  # as if started; the hand-over itself is not what this test is about
    monkeypatch.setattr("engine.coordinator.membership.asyncio.run_coroutine_threadsafe",
                        lambda coroutine, loop: SimpleNamespace(result=lambda timeout: coroutine.close()))

    async def changed(_revoked):
        return None

    member.on_change = changed
    member._on_stats(up)
    member._on_assign(FakeConsumer(), [TopicPartition("A.orders", 0)])  # a callback: no statistics meanwhile
    clock.now += SESSION_MS / 1000 + 3  # SIGSTOP right after it
    member._on_stats(up)  # the first statistics after the wake-up, before librdkafka reports the session lost
    assert not member.healthy()


def test_a_standstill_in_the_middle_of_a_rebalance_callback_puts_the_membership_in_doubt(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr("engine.coordinator.membership.time.monotonic", clock)
    member = membership({("A.orders", 0)})
    member._on_stats(json.dumps({"cgrp": {"state": "up"}}))
    member._in_callback = True  # frozen while the workers were being changed
    assert member.healthy()
    member.noticed_standstill(SESSION_MS / 2000 - 0.5)  # the event loop's tick came a little late: no matter
    assert member.healthy()
    clock.now += SESSION_MS / 1000 + 2
    member.noticed_standstill(SESSION_MS / 1000 + 2)  # the event loop's tick after the wake-up
    assert not member.healthy(), "in doubt, callback or not"


def test_a_lease_expires_without_renewal_and_never_without_a_lease():
    clock = FakeClock()
    lease = Lease(3.0, clock)
    clock.now += 2.9
    assert not lease.expired()
    lease.renew()
    clock.now += 2.9
    assert not lease.expired()
    clock.now += 0.2
    assert lease.expired()
    lease.renew()
    assert not lease.expired()
    waiting = Lease(3.0, clock, granted=False)  # started while the membership was in doubt
    assert waiting.expired()
    waiting.renew()
    assert not waiting.expired()
    alone = Lease(0.0, clock)
    clock.now += 1e6
    assert not alone.expired()


def properties(extra: str) -> dict[str, str]:
    base = ("clusters = A, B\nA.bootstrap.servers = 127.0.0.1:1\nB.bootstrap.servers = 127.0.0.1:2\n"
            "A->B.enabled = true\n")
    from engine.config.properties import parse_properties

    return parse_properties(base + extra)


def test_group_keys_are_read():
    config = from_properties(properties("mirror.engine.group.id = mirrors\n"
                                        "mirror.engine.group.session.timeout.ms = 6000\n"
                                        "B.exactly.once.source.support = enabled\n"), quiet=True)
    assert (config.group_id, config.group_session_timeout_ms, config.flows[0].exactly_once) == ("mirrors", 6000, True)
    assert from_properties(properties(""), quiet=True).group_id == ""
    with pytest.raises(ConfigError, match=r"mirror\.engine\.group\.session\.timeout\.ms.*at least 1000"):
        from_properties(properties("mirror.engine.group.id = m\nmirror.engine.group.session.timeout.ms = 5\n"),
                        quiet=True)
