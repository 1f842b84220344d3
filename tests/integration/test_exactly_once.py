"""exactly.once.source.support = enabled: records and source progress in one transaction per worker.

A read_committed consumer on the target sees every source record exactly once, across a kill -9
of a worker and across a worker that hangs (SIGSTOP), is replaced, and wakes up fenced.
"""

from __future__ import annotations

import os
import signal

import pytest

from engine.audit.flow import audit_flow
from engine.config.loading import from_properties
from engine.config.properties import parse_properties
from tests.helpers import wait_for
from tests.integration.kafka_io import (
    BASE_TIMESTAMP_MS,
    Record,
    SteadyProducer,
    end_offsets,
    mm2_properties,
    produce,
    read_all,
)

PARTITIONS = 3


def numbered(first: int, count: int = 200) -> list[Record]:
    return [Record(i % PARTITIONS, f"k{i}".encode(), f"v{i}".encode(), (("n", str(i).encode()),), BASE_TIMESTAMP_MS + i)
            for i in range(first, first + count)]


def exactly_once_properties(source_cluster, target_cluster, topic: str, loop: str, **extra: str) -> str:
    return mm2_properties(source_cluster, target_cluster, {
        "A->B.topics": topic, "B.exactly.once.source.support": "enabled", "mirror.engine.loop": loop,
        "tasks.max": "1", **extra})


def assert_exactly_once(source_cluster, target_cluster, properties: str, topic: str, written: list[Record]) -> None:
    remote = f"A.{topic}"
    copies = read_all(target_cluster.bootstrap_servers, remote, isolation="read_committed")
    for partition in range(PARTITIONS):
        want = [r for r in written if r.partition == partition]
        got = copies[partition]
        assert [r.key for r in got] == [r.key for r in want], f"partition {partition}: {len(got)} vs {len(want)}"
        assert got == want
    config = from_properties(parse_properties(properties))
    for result in audit_flow(config, config.flows[0], [topic]):
        assert result.ok and result.duplicated == 0 and result.copied == result.expected, result


@pytest.mark.parametrize("loop", ["c", "python"])
def test_read_committed_sees_each_record_once_across_a_killed_worker(loop, source_cluster, target_cluster, engine,
                                                                     unique_name):
    topic = source_cluster.create_topic(unique_name("eos-kill"), PARTITIONS)
    properties = exactly_once_properties(source_cluster, target_cluster, topic, loop)
    run = engine(properties)
    remote = f"A.{topic}"
    with SteadyProducer(source_cluster.bootstrap_servers, topic, numbered) as producer:
        wait_for(lambda: sum(end_offsets(target_cluster.bootstrap_servers, remote).values()) > 2000, 60,
                 "a first part of the copy", run.log)
        os.kill(run.worker_pids()[0], signal.SIGKILL)  # mid-transaction, most likely
        wait_for(lambda: run.restarts() == 1, 60, "the worker restarted", run.log)
        written_at_restart = len(producer.written)
        wait_for(lambda: len(producer.written) > written_at_restart + 1000, 60, "more source records", run.log)
    written = producer.written
    wait_for(lambda: _committed_count(target_cluster, remote) >= len(written), 90, "the whole copy", run.log)
    assert run.restarts() == 1
    assert run.stop() == 0, run.log()
    assert_exactly_once(source_cluster, target_cluster, properties, topic, written)
    print(f"\nexactly-once, kill -9 of a worker ({loop} loop): sent {len(written)}, missing 0, duplicated 0")

    # the same flow in at-least-once mode afterwards: its worker starts where the target's last offsets
    # are transaction markers, which no consumer receives; resuming after the target's tail finds nothing
    # to skip there (it once took that for a broken read and crashed at every start)
    more = numbered(len(written), 300)
    produce(source_cluster.bootstrap_servers, topic, more)
    run = engine(mm2_properties(source_cluster, target_cluster, {"A->B.topics": topic, "mirror.engine.loop": loop,
                                                                "tasks.max": "1"}))
    wait_for(lambda: _committed_count(target_cluster, remote) >= len(written) + len(more), 60,
             "the records produced after the switch", run.log)
    assert run.restarts() == 0
    assert run.stop() == 0, run.log()
    assert _committed_count(target_cluster, remote) == len(written) + len(more)


def test_a_hung_worker_is_replaced_and_fenced_when_it_wakes(source_cluster, target_cluster, engine, unique_name):
    topic = source_cluster.create_topic(unique_name("eos-zombie"), PARTITIONS)
    properties = exactly_once_properties(source_cluster, target_cluster, topic, "c",
                                         **{"mirror.engine.worker.timeout.ms": "4000"})
    run = engine(properties)
    remote = f"A.{topic}"
    with SteadyProducer(source_cluster.bootstrap_servers, topic, numbered) as producer:
        wait_for(lambda: sum(end_offsets(target_cluster.bootstrap_servers, remote).values()) > 1000, 60,
                 "a first part of the copy", run.log)
        hung = run.worker_pids()[0]
        os.kill(hung, signal.SIGSTOP)
        wait_for(lambda: run.worker_pids()[0] != hung, 30, "a replacement worker", run.log)
        copied = sum(end_offsets(target_cluster.bootstrap_servers, remote).values())
        wait_for(lambda: sum(end_offsets(target_cluster.bootstrap_servers, remote).values()) > copied + 1000, 60,
                 "the replacement copying", run.log)
        os.kill(hung, signal.SIGCONT)  # wakes with an open transaction and records to send
        wait_for(lambda: not os.path.exists(f"/proc/{hung}") or _zombie(hung), 60, "the old worker to exit",
                 run.log)
    written = producer.written
    wait_for(lambda: _committed_count(target_cluster, remote) >= len(written), 90, "the whole copy", run.log)
    assert run.stop() == 0, run.log()
    log = run.log()
    assert f"(pid {hung}) silent for" in log and "fencing it out" in log
    assert "fenced" in log.lower()  # what the old worker was told when it tried to go on
    assert_exactly_once(source_cluster, target_cluster, properties, topic, written)
    print(f"\nexactly-once, hung worker replaced and fenced: sent {len(written)}, missing 0, duplicated 0")


def _committed_count(cluster, topic: str) -> int:
    return sum(len(records)
               for records in read_all(cluster.bootstrap_servers, topic, isolation="read_committed").values())


def _zombie(pid: int) -> bool:
    """A child that exited but was not reaped yet (the coordinator reaps it)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True
