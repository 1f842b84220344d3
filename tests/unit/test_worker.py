"""The worker's rules, against a fake relay (with the real bookkeeper) and a fake progress store:
progress is stored only for acknowledged records; a hand-over drains and stores before the
partitions move; exactly-once mode commits nothing once its lease ran out."""

from __future__ import annotations

import queue

import pytest

from engine import ipc
from engine._fastpath import Bookkeeper
from engine.worker.loop import Worker

TOPIC, REMOTE = "orders", "A.orders"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeRelay:
    """Sends and acknowledges what the test scripts, and writes down what the worker asked of it.

    `batches`: one entry per pump(): [(partition, source offsets sent, how many of the in-flight
    records of that partition the target acknowledges)]. When the script runs out, `then` goes
    into the worker's inbox. flush() acknowledges what is in flight unless the target is `away`."""

    def __init__(self, events: list, inbox: queue.Queue, batches: list, then: list, away: bool = False,
                 clock: FakeClock | None = None, advance_s: float = 0.0):
        self.bookkeeper = Bookkeeper()
        self.events, self.inbox, self.batches, self.then = events, inbox, list(batches), list(then)
        self.away, self.clock, self.advance_s = away, clock, advance_s
        self.in_flight: dict[int, list[int]] = {}
        self.next_target: dict[int, int] = {}
        self.consumed: dict[int, int] = {}

    def add_partition(self, source_topic, remote_topic, partition, last_committed_offset=-1, apply_filter=True):
        self.events.append(("add", partition, last_committed_offset))
        return self.bookkeeper.add_partition(source_topic, remote_topic, partition, last_committed_offset,
                                             apply_filter)

    def remove_partition(self, remote_topic, partition):
        self.events.append(("remove", partition))
        return self.bookkeeper.remove_partition(remote_topic, partition)

    def assign(self, positions):
        self.events.append(("assign", sorted(positions)))

    def pump(self, timeout_ms):
        if not self.batches:
            self._script_done()
            return 0
        for partition, offsets, acked in self.batches.pop(0):
            ledger = self.bookkeeper.ledgers[(REMOTE, partition)]
            for offset in offsets:
                self.bookkeeper.sent(ledger, offset, 0, 10)
                self.in_flight.setdefault(partition, []).append(offset)
                self.consumed[partition] = offset + 1
            self._ack(partition, acked)
        if self.clock is not None:
            self.clock.now += self.advance_s
        return 1

    def _ack(self, partition: int, count: int) -> None:
        for _ in range(count):
            self.in_flight[partition].pop(0)
            target = self.next_target.get(partition, 0)
            self.next_target[partition] = target + 1
            self.bookkeeper.delivered(REMOTE, partition, target, 10, None, 0)

    def serve(self, timeout_ms):  # all a worker does while its lease is out
        if not self.batches:
            self._script_done()

    def _script_done(self) -> None:
        while self.then:
            self.inbox.put(self.then.pop(0))

    def flush(self, timeout_s):
        self.events.append("flush")
        if not self.away:
            for partition, offsets in self.in_flight.items():
                self._ack(partition, len(offsets))
        return sum(len(offsets) for offsets in self.in_flight.values())

    def positions(self, partitions):
        return [self.consumed.get(partition, 0) for _topic, partition in partitions]

    def high_watermark(self, topic, partition):
        return self.consumed.get(partition, 0)

    def produce_record(self, topic, partition, key, value):
        self.events.append(("produce", topic))

    def init_transactions(self, timeout_s):
        self.events.append("init transactions")

    def begin_transaction(self):
        self.events.append("begin")

    def commit_transaction(self, timeout_s):
        self.events.append("commit")

    def abort_transaction(self, timeout_s):
        self.events.append("abort")

    def close(self):
        self.events.append("close")


class FakeProgress:
    """The progress store: remembers what was stored, in order, and loads it back."""

    def __init__(self, events: list):
        self.events = events
        self.stored: dict[tuple[str, int], int] = {}

    def load(self):
        self.events.append("load")
        return dict(self.stored)

    def store_runs(self, runs):
        self.events.append(("store runs", sorted((r[1], r[2], r[3]) for r in runs)))

    def store(self, entries):
        self.events.append(("store", sorted((partition, offset) for _topic, partition, offset in entries)))
        self.stored.update({(topic, partition): offset for topic, partition, offset in entries})

    def run_records(self, runs):
        return [(f"runs-{r[1]}", 0, b"k", b"v") for r in runs]

    def progress_records(self, entries):
        return [(f"progress-{e[1]}", 0, b"k", b"v") for e in entries]


def assign(partitions: list[int], generation: int = 0, **settings) -> ipc.Assign:
    return ipc.Assign(flow="A->B", source_alias="A", target_alias="B", worker_index=0,
                      partitions=[ipc.PartitionTask(TOPIC, p, REMOTE) for p in partitions],
                      source_client={}, target_client={}, offsets_topic="mm2-offsets.A.internal",
                      offset_flush_interval_ms=60_000, poll_timeout_ms=1, generation=generation,
                      offset_lag_max=-1, **settings)


def worker(assignment: ipc.Assign, batches: list, then: list, away: bool = False, clock: FakeClock | None = None,
           advance_s: float = 0.0):
    events, reports, inbox = [], [], queue.Queue()
    clock = clock or FakeClock()
    relay = FakeRelay(events, inbox, batches, then, away, clock, advance_s)
    progress = FakeProgress(events)

    def report(message):
        reports.append(message)
        events.append(("report", type(message).__name__))
    return Worker(assignment, inbox, report, relay, progress, clock=clock), events, reports, progress


def test_progress_is_stored_only_for_what_the_target_acknowledged():
    # ten records sent, six acknowledged; then the target stays away while the worker stops
    subject, events, reports, progress = worker(assign([0]), [[(0, range(10), 6)]], [ipc.Stop()], away=True)
    assert subject.run() == 1  # records still in flight: not a clean stop
    assert progress.stored == {(TOPIC, 0): 5}
    assert ("store runs", [(0, 0, 0)]) in events  # the offset-map run of 0..5 at 0..5 first
    assert events.index(("store runs", [(0, 0, 0)])) < events.index(("store", [(0, 5)]))
    assert [p.last_acked_offset for p in reports[-1].partitions] == [5]
    assert events[-1] == "close"


def test_a_clean_stop_stores_everything_acknowledged_by_the_final_flush():
    subject, events, _reports, progress = worker(assign([0]), [[(0, range(10), 6)]], [ipc.Stop()])
    assert subject.run() == 0
    assert progress.stored == {(TOPIC, 0): 9}
    assert events.index("flush") < events.index(("store", [(0, 9)]))


def test_a_hand_over_drains_and_stores_before_the_partitions_move():
    # partitions 0 and 1, five records each in flight; then partition 0 moves away
    batches = [[(0, range(5), 0), (1, range(5), 0)]]
    subject, events, reports, progress = worker(assign([0, 1]), batches, [assign([1], generation=1), ipc.Stop()])
    assert subject.run() == 0
    hand_over = events[events.index(("assign", [(TOPIC, 0, -2), (TOPIC, 1, -2)])) + 1:]
    assert hand_over[:9] == [
        "flush",  # every record in flight acknowledged first
        # the runs of 0..4 at 0..4, and where each partition's next copy goes (read through 4: at 5)
        ("store runs", [(0, -1, 5), (0, 0, 0), (1, -1, 5), (1, 0, 0)]),
        ("store", [(0, 4), (1, 4)]),
        ("report", "Report"),  # the coordinator learns the old partitions are drained
        ("assign", []),
        ("remove", 0), ("remove", 1),
        "load",  # the new assignment starts from the progress just stored
        ("add", 1, 4),
    ]
    assert hand_over[9] == ("assign", [(TOPIC, 1, 5)])
    drained = next(r for r in reports if r.generation == 0 and r.partitions and
                   all(p.in_flight == 0 for p in r.partitions))
    assert sorted((p.partition, p.last_acked_offset) for p in drained.partitions) == [(0, 4), (1, 4)]
    assert progress.stored == {(TOPIC, 0): 4, (TOPIC, 1): 4}


def test_exactly_once_commits_nothing_once_the_lease_ran_out_and_aborts_the_open_transaction():
    clock = FakeClock()
    # the records are acknowledged, then the coordinator goes quiet past the 3 s lease
    subject, events, reports, _progress = worker(assign([0], transactional_id="A->B-0", lease_s=3.0),
                                                 [[(0, range(10), 10)]], [ipc.Stop()], clock=clock, advance_s=3.1)
    assert subject.run() == 1
    assert "commit" not in events and ("produce", "progress-0") not in events
    assert events.count("abort") == 1
    failed = reports[-1]
    assert isinstance(failed, ipc.Failed)
    assert "worker 0 of A->B: the lease ran out" in failed.error


@pytest.mark.parametrize("lease_s", [0.0, 3.0])
def test_exactly_once_commits_records_and_their_progress_together_under_the_lease(lease_s):
    subject, events, _reports, _progress = worker(assign([0], transactional_id="A->B-0", lease_s=lease_s),
                                                  [[(0, range(10), 10)]], [ipc.Stop()])
    assert subject.run() == 0
    commit = events.index("commit")
    assert ("produce", "runs-0") in events[:commit] and ("produce", "progress-0") in events[:commit]
    assert "abort" not in events


def test_exactly_once_past_the_lease_with_an_empty_transaction_neither_commits_nor_aborts():
    clock = FakeClock()
    subject, events, _reports, _progress = worker(assign([0], transactional_id="A->B-0", lease_s=3.0),
                                                  [[(0, [], 0)]], [ipc.Stop()], clock=clock, advance_s=3.1)
    assert subject.run() == 0
    assert "commit" not in events and "abort" not in events
