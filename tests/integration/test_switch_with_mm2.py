"""Switching between Java MirrorMaker 2 4.3.1 and mirror-engine on one mm2.properties, both ways.

Each test runs one replicator until it has copied a first batch and stored its source progress in
`mm2-offsets.<source>.internal` (or the topic the file's `offset.storage.topic` names), stops it by
its pid (SIGTERM), produces a second batch and runs the other replicator on the same file. Every
source record must be on the target, in order, and the second replicator must resume right after
the first one's stored progress: duplicates are at most the records copied after the last stored
offset (one `offset.flush.interval.ms` of copies; 0 after a clean stop, which stores everything
acknowledged). The Connect offset keys must be the same bytes in the same partition of the offsets
topic whoever wrote them, and both replicators' offset syncs and checkpoints share their topics:
each one decodes and none lets a failed-over consumer skip a record.

Cluster aliases are unique per test (`A<token>`, `B<token>`), so MM2's Connect state on the
session's brokers (`mm2-configs.<alias>.internal`, `mm2-status.…`, `mm2-offsets.…`, the group
`<alias>-mm2`) never carries over from one test to the next.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from engine.offsets import wire
from tests.helpers import wait_for
from tests.integration.conftest import ClusterHandle, EngineProcess
from tests.integration.java_mm2 import JavaMirrorMaker, mm2_file
from tests.integration.kafka_io import Record, end_offsets, produce, read_all
from tests.integration.test_replicate_a_to_b import PARTITIONS, by_partition, sample_records

FIRST, SECOND = 3000, 1500  # records before and after the switch
MM2_START_S = 120  # a JVM start, herder group, connector and task start on 2 shared cores
COORDINATOR_SETTLING = {KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                        KafkaError.COORDINATOR_NOT_AVAILABLE}


@dataclass
class Switch:
    """One test's flow: its own aliases, topic, mm2.properties and processes."""

    source: ClusterHandle
    target: ClusterHandle
    source_alias: str
    target_alias: str
    topic: str
    folder: Path
    # where the file says the progress is (offset.storage.topic); "": MM2's default
    progress_topic: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    config: Path = field(init=False)
    group: str = field(init=False)
    processes: list[JavaMirrorMaker | EngineProcess] = field(default_factory=list)

    def __post_init__(self):
        self.config = self.folder / "mm2.properties"
        self.config.write_text(mm2_file(self.source_alias, self.target_alias, self.source.bootstrap_servers,
                                        self.target.bootstrap_servers, self.topic, self.extra))
        self.group = f"switch-{uuid.uuid4().hex[:8]}"

    @property
    def remote(self) -> str:
        return f"{self.source_alias}.{self.topic}"

    @property
    def offsets_topic(self) -> str:
        return self.progress_topic or wire.connect_offsets_topic(self.source_alias)

    @property
    def checkpoints_topic(self) -> str:
        return wire.checkpoints_topic(self.source_alias)

    @property
    def offset_syncs_topic(self) -> str:  # location `source`: on the source, named after the target
        return wire.offset_syncs_topic(self.target_alias)

    def start_mm2(self) -> JavaMirrorMaker:
        mm2 = JavaMirrorMaker(self.folder / f"mm2-{len(self.processes)}").start(self.config, self.target_alias)
        self.processes.append(mm2)
        return mm2

    def start_engine(self) -> EngineProcess:
        # the engine's test launcher writes the file it runs to <folder>/mm2.properties: the same
        # path and text MM2 reads
        run = EngineProcess(self.folder).start(self.config.read_text())
        self.processes.append(run)
        return run

    # -- what is on the clusters ------------------------------------------------------------------

    def target_count(self) -> int:
        return sum(end_offsets(self.target.bootstrap_servers, self.remote).values())

    def progress_entries(self) -> list[tuple[int, bytes, bytes | None]]:
        """(offsets-topic partition, key, value) of this flow's MirrorSourceConnector entries for the
        test topic, in the order each partition holds them."""
        entries = []
        for partition, records in read_all(self.target.bootstrap_servers, self.offsets_topic).items():
            for r in records:
                decoded = wire.decode_source_offset(r.key, r.value)
                if decoded and decoded[0].cluster == self.source_alias and decoded[0].topic == self.topic:
                    entries.append((partition, r.key, r.value))
        return entries

    def stored(self, entries: list[tuple[int, bytes, bytes | None]] | None = None) -> dict[int, int]:
        """Source partition -> last replicated offset stored, as a Connect offset reader sees it."""
        latest: dict[int, int] = {}
        for _partition, key, value in self.progress_entries() if entries is None else entries:
            where, offset = wire.decode_source_offset(key, value)
            latest[where.partition] = offset
        return latest

    def checkpoints(self) -> list[wire.Checkpoint]:
        """Every checkpoint of the test's group in the order written; each must decode."""
        found = []
        for records in read_all(self.target.bootstrap_servers, self.checkpoints_topic).values():
            for r in records:
                checkpoint = wire.Checkpoint.decode(r.key, r.value)
                if checkpoint.group == self.group and checkpoint.topic == self.remote:
                    found.append(checkpoint)
        return found

    def checkpointed(self, upstream: dict[int, int], downstream: dict[int, int] | None = None) -> bool:
        """Whether each partition has a checkpoint of the group at these upstream (and downstream) offsets."""
        found = {c.partition for c in self.checkpoints() if c.upstream_offset == upstream[c.partition]
                 and (downstream is None or c.downstream_offset == downstream[c.partition])}
        return found == set(upstream)

    def offset_syncs(self) -> list[wire.OffsetSync]:
        found = []
        for records in read_all(self.source.bootstrap_servers, self.offset_syncs_topic).values():
            for r in records:
                sync = wire.OffsetSync.decode(r.key, r.value)
                if sync.topic == self.topic:
                    found.append(sync)
        return found

    def commit_group(self, positions: dict[int, int]) -> None:
        """Commits the group's positions on the source, retrying while its coordinator settles (a
        fresh broker is still loading `__consumer_offsets`)."""
        consumer = Consumer({"bootstrap.servers": self.source.bootstrap_servers, "group.id": self.group,
                             "enable.auto.commit": False})
        offsets = [TopicPartition(self.topic, p, o) for p, o in positions.items()]

        def committed() -> bool:
            try:
                consumer.commit(offsets=offsets, asynchronous=False)
                return True
            except KafkaException as error:
                if error.args[0].code() in COORDINATOR_SETTLING or error.args[0].retriable():
                    return False
                raise

        try:
            wait_for(committed, 30, f"a commit of group {self.group}", interval_s=0.2)
        finally:
            consumer.close()

    def diagnostics(self) -> str:
        return "\n".join(p.log_tail() if isinstance(p, JavaMirrorMaker) else "--- engine log ---\n"
                         + "\n".join(p.log().splitlines()[-40:]) for p in self.processes)


def _switch(source_cluster, target_cluster, unique_name, tmp_path, progress_topic=lambda token, target: {}):
    token = uuid.uuid4().hex[:6]
    extra = progress_topic(token, f"B{token}")
    flow = Switch(source_cluster, target_cluster, f"A{token}", f"B{token}",
                  source_cluster.create_topic(unique_name("orders"), PARTITIONS), tmp_path,
                  extra.get("offset.storage.topic", ""), extra)
    yield flow
    for process in flow.processes:  # by pid, whatever the test left running
        if isinstance(process, JavaMirrorMaker):
            process.stop(deadline_s=20)
        else:
            process.kill()


@pytest.fixture
def switch(source_cluster, target_cluster, unique_name, tmp_path):
    yield from _switch(source_cluster, target_cluster, unique_name, tmp_path)


@pytest.fixture
def custom_progress_switch(source_cluster, target_cluster, unique_name, tmp_path):
    """A file that names its own progress topic twice: at the top level, which MM2's driver copies
    over `<target>.offset.storage.topic` into the herder's worker config, and per target cluster."""
    yield from _switch(source_cluster, target_cluster, unique_name, tmp_path, lambda token, target: {
        "offset.storage.topic": f"progress-{token}", f"{target}.offset.storage.topic": f"shadowed-{token}"})


def counts(records: list[Record]) -> dict[int, int]:
    return {p: len(rs) for p, rs in by_partition(records).items()}


def compare(produced: list[Record], copied: dict[int, list[Record]]) -> dict[int, dict[str, int]]:
    """Per partition: source records missing on the target, extra copies of source records, and
    target records that are no source record. The copy without its duplicates must be the source
    partition in order."""
    outcome = {}
    for partition, source in by_partition(produced).items():
        target = copied.get(partition, [])
        wanted, have = Counter(source), Counter(target)
        foreign = sum(n for r, n in have.items() if r not in wanted)
        firsts = list(dict.fromkeys(r for r in target if r in wanted))
        assert firsts == [r for r in source if r in have], f"partition {partition}: copies out of order"
        outcome[partition] = {"missing": sum((wanted - have).values()), "foreign": foreign,
                              "duplicates": sum(n - 1 for r, n in have.items() if r in wanted and n > 1)}
    return outcome


def exact_target_position(produced: list[Record], copied: dict[int, list[Record]], partition: int,
                          position: int) -> int:
    """Where a consumer at source `position` must resume on the target to miss nothing: the first
    target offset holding a source record at or after the position (the end if there is none)."""
    needed = set(by_partition(produced)[partition][position:])
    target = copied[partition]
    return next((offset for offset, r in enumerate(target) if r in needed), len(target))


def assert_progress_bytes(flow: Switch, entries, last: dict[int, int]) -> None:
    """The stored key of each source partition is MM2's byte for byte, sits in one partition of the
    offsets topic (murmur2 of the key, as Connect's producer places it), and its newest value is
    `{"offset":<last>}`."""
    for p in range(PARTITIONS):
        key = wire.source_offset_key(flow.source_alias, flow.topic, p)
        assert key == (f'["MirrorSourceConnector",{{"cluster":"{flow.source_alias}","partition":{p},'
                       f'"topic":"{flow.topic}"}}]').encode()
        mine = [(partition, value) for partition, k, value in entries if k == key]
        assert mine, f"no progress stored under {key!r}; stored: {sorted({k for _, k, _ in entries})}"
        assert len({partition for partition, _ in mine}) == 1, f"{key!r} in several offsets partitions: {mine}"
        assert mine[-1][1] == wire.source_offset_value(last[p]) == f'{{"offset":{last[p]}}}'.encode()
    other_keys = {k for _, k, _ in entries} - {wire.source_offset_key(flow.source_alias, flow.topic, p)
                                              for p in range(PARTITIONS)}
    assert not other_keys, f"progress of {flow.topic} under keys of another spelling: {other_keys}"


def assert_checkpoints_safe(checkpoints: list[wire.Checkpoint], produced: list[Record],
                            copied: dict[int, list[Record]]) -> None:
    """No checkpoint sends a failed-over consumer past a record it has not read."""
    for c in checkpoints:
        exact = exact_target_position(produced, copied, c.partition, c.upstream_offset)
        assert c.downstream_offset <= exact, f"{c} skips target records {exact}..{c.downstream_offset - 1}"


def assert_offset_syncs_true(syncs: list[wire.OffsetSync], produced: list[Record],
                             copied: dict[int, list[Record]], switched_at: dict[int, int]) -> None:
    """Both replicators' syncs decode, each names a copy of its source record, and each replicator
    synced its first record (MM2's rule 1: no sync yet in this task's lifetime)."""
    source = by_partition(produced)
    for s in syncs:
        assert copied[s.partition][s.downstream_offset] == source[s.partition][s.upstream_offset], s
    for p in range(PARTITIONS):
        upstream = {s.upstream_offset for s in syncs if s.partition == p}
        assert {0, switched_at[p]} <= upstream, f"partition {p}: syncs at {sorted(upstream)}"


def report(direction: str, produced: list[Record], outcome: dict, bound: dict[int, int],
           checkpoints: list[wire.Checkpoint]) -> None:
    """The measured numbers, for `pytest -s` and the CI log."""
    print(f"\n{direction}: {len(produced)} records, {sum(o['missing'] for o in outcome.values())} missing, "
          f"{sum(o['duplicates'] for o in outcome.values())} duplicates (allowed by the stored progress: "
          f"{sum(bound.values())}); checkpoints (partition, upstream -> downstream): "
          f"{[(c.partition, c.upstream_offset, c.downstream_offset) for c in checkpoints]}")


def assert_same_copy(direction: str, produced: list[Record], copied: dict[int, list[Record]],
                     copied_by_first: dict[int, int], stored_at_switch: dict[int, int],
                     checkpoints: list[wire.Checkpoint]) -> None:
    """0 missing; duplicates at most the copies acknowledged after the first replicator's last
    stored offset — 0 here, as it was stopped cleanly after storing everything."""
    outcome = compare(produced, copied)
    bound = {p: copied_by_first[p] - (stored_at_switch[p] + 1) for p in range(PARTITIONS)}
    report(direction, produced, outcome, bound, checkpoints)
    for p, o in outcome.items():
        assert o["missing"] == 0 and o["foreign"] == 0, (p, o)
        assert o["duplicates"] <= bound[p], (p, o, bound)
    assert bound == {p: 0 for p in range(PARTITIONS)}, bound


def assert_stopped_by_sigterm(code: int | None, mm2: JavaMirrorMaker) -> None:
    # 143 = 128 + SIGTERM once the JVM's shutdown hook (herders stopped, offsets committed) ran;
    # -9 would mean it missed the deadline and was killed
    assert code in (0, 143), f"Java MM2 stopped with {code}\n{mm2.log_tail()}"


def offset_errors(mm2: JavaMirrorMaker) -> list[str]:
    """MM2's ERROR lines about offsets, checkpoints or undecodable records."""
    return [e for e in mm2.errors() if any(w in e.lower() for w in ("offset", "checkpoint", "schema"))]


def last_offsets(records: list[Record]) -> dict[int, int]:
    """The source offset of each partition's last record (records are produced from offset 0)."""
    return {p: n - 1 for p, n in counts(records).items()}


def produce_more(flow: Switch, produced: list[Record], count: int) -> list[Record]:
    """`count` more records after `produced`; returns everything produced so far."""
    more = sample_records(count, first=len(produced))
    produce(flow.source.bootstrap_servers, flow.topic, more)
    return produced + more


def copy_with_mm2(flow: Switch, produced: list[Record], before_stop=lambda mm2: None) -> None:
    """Java MM2 copies everything produced and stores its progress for the last record of each
    partition, `before_stop` waits for whatever else the test needs, and MM2 stops by SIGTERM
    with no error about offsets."""
    last = last_offsets(produced)
    mm2 = flow.start_mm2()
    wait_for(lambda: mm2.check_running() or flow.stored() == last, MM2_START_S,
             f"Java MM2 to copy {len(produced)} records and commit its offsets {last} in "
             f"{flow.offsets_topic}", flow.diagnostics)
    before_stop(mm2)
    assert_stopped_by_sigterm(mm2.stop(), mm2)
    assert not offset_errors(mm2), mm2.errors()


def copy_with_engine(flow: Switch, produced: list[Record]) -> EngineProcess:
    """The engine copies everything produced and stores its progress for the last record of each
    partition; returns the running engine."""
    last = last_offsets(produced)
    run = flow.start_engine()
    wait_for(lambda: flow.target_count() >= len(produced), 60, f"{len(produced)} records in {flow.remote}",
             flow.diagnostics)
    wait_for(lambda: flow.stored() == last, 30, f"the engine's progress {last}", flow.diagnostics)
    return run


def test_engine_continues_from_java_mm2_s_stored_offsets(switch):
    flow = switch
    first = sample_records(FIRST)
    produce(flow.source.bootstrap_servers, flow.topic, first)
    n = counts(first)
    in_mm2_range = {p: n[p] // 2 for p in range(PARTITIONS)}  # a consumer group half-way through
    flow.commit_group(in_mm2_range)

    copy_with_mm2(flow, first, before_stop=lambda mm2: wait_for(
        lambda: mm2.check_running() or flow.checkpointed(in_mm2_range), 60,
        f"Java MM2's checkpoints of group {flow.group} at {in_mm2_range}", flow.diagnostics))
    last_first = last_offsets(first)
    copied_by_mm2 = end_offsets(flow.target.bootstrap_servers, flow.remote)
    mm2_entries = flow.progress_entries()
    stored_at_switch = flow.stored(mm2_entries)
    checkpoints_by_mm2 = flow.checkpoints()
    # what MM2 itself wrote is what wire.py writes, byte for byte
    assert_progress_bytes(flow, mm2_entries, last_first)

    produced = produce_more(flow, first, SECOND)
    total = counts(produced)
    run = copy_with_engine(flow, produced)
    last_all = last_offsets(produced)
    # two checkpoint rounds with the whole copy in the offset map (written before the progress) and
    # the group still inside MM2's part of the copy, which the engine's offset map does not cover
    rounds = run.log().count("checkpoints written")
    wait_for(lambda: run.log().count("checkpoints written") >= rounds + 2, 30, "two checkpoint rounds",
             flow.diagnostics)
    # the group moves on into the engine's part of the copy, which it translates exactly
    in_engine_range = {p: n[p] + (total[p] - n[p]) // 2 for p in range(PARTITIONS)}
    flow.commit_group(in_engine_range)
    wait_for(lambda: flow.checkpointed(in_engine_range), 30,
             f"the engine's checkpoints of group {flow.group} at {in_engine_range}", flow.diagnostics)
    assert run.stop() == 0, run.log()
    # the shared file's Connect worker keys are named as not used, and nothing stopped the engine
    assert "config.storage.replication.factor" in run.log()

    copied = read_all(flow.target.bootstrap_servers, flow.remote)
    checkpoints = flow.checkpoints()
    assert_same_copy("Java MM2 -> mirror-engine", produced, copied, copied_by_mm2, stored_at_switch, checkpoints)
    # the engine stored its progress under MM2's keys, in the offsets partitions MM2 used
    assert_progress_bytes(flow, flow.progress_entries(), last_all)

    assert_offset_syncs_true(flow.offset_syncs(), produced, copied, n)
    assert checkpoints[: len(checkpoints_by_mm2)] == checkpoints_by_mm2
    assert_checkpoints_safe(checkpoints, produced, copied)
    by_engine = checkpoints[len(checkpoints_by_mm2):]
    # inside MM2's part of the copy the engine's map places nothing: MM2's checkpoint stays the newest
    assert not [c for c in by_engine if c.upstream_offset == in_mm2_range[c.partition]], by_engine
    for c in by_engine:
        if c.upstream_offset == in_engine_range[c.partition]:
            assert c.downstream_offset == exact_target_position(produced, copied, c.partition, c.upstream_offset)
    assert_audit_ok(flow, produced, sum(copied_by_mm2.values()))


def assert_audit_ok(flow: Switch, produced: list[Record], by_mm2: int) -> None:
    """mirror-engine audit on the switched flow: MM2's part of the copy is recognised by content."""
    from engine.audit.comparison import report
    from engine.audit.flow import audit_flow
    from engine.config.loading import load

    config = load(flow.config, quiet=True)
    results = audit_flow(config, config.flows[0], [flow.topic])
    assert all(r.ok for r in results), report(results)
    assert sum(r.copied for r in results) == len(produced), report(results)
    assert sum(r.copied_by_others for r in results) == by_mm2, report(results)


def test_java_mm2_continues_from_the_engine_s_stored_offsets(switch):
    flow = switch
    first = sample_records(FIRST)
    produce(flow.source.bootstrap_servers, flow.topic, first)
    n = counts(first)
    in_engine_range = {p: n[p] // 4 for p in range(PARTITIONS)}
    flow.commit_group(in_engine_range)

    run = flow.start_engine()
    wait_for(lambda: flow.target_count() >= FIRST, 60, f"{FIRST} records in {flow.remote}", flow.diagnostics)
    wait_for(lambda: flow.checkpointed(in_engine_range), 30,
             f"the engine's checkpoints of group {flow.group} at {in_engine_range}", flow.diagnostics)
    assert run.stop() == 0, run.log()
    copied_by_engine = end_offsets(flow.target.bootstrap_servers, flow.remote)
    last_first = {p: n[p] - 1 for p in range(PARTITIONS)}
    engine_entries = flow.progress_entries()
    stored_at_switch = flow.stored(engine_entries)
    assert stored_at_switch == last_first  # SIGTERM stores everything acknowledged
    assert_progress_bytes(flow, engine_entries, last_first)
    checkpoints_by_engine = flow.checkpoints()

    produced = produce_more(flow, first, SECOND)
    total = counts(produced)
    flow.commit_group(total)  # the group has read everything, into MM2's part of the copy

    # MM2's checkpoint task starts on the engine's checkpoints and offset syncs and goes on from them
    copy_with_mm2(flow, produced, before_stop=lambda mm2: wait_for(
        lambda: mm2.check_running() or flow.checkpointed(total, downstream=total), 60,
        f"Java MM2's checkpoints of group {flow.group}: {total} -> {total}", flow.diagnostics))
    last_all = last_offsets(produced)
    mm2_entries = flow.progress_entries()

    copied = read_all(flow.target.bootstrap_servers, flow.remote)
    checkpoints = flow.checkpoints()
    assert_same_copy("mirror-engine -> Java MM2", produced, copied, copied_by_engine, stored_at_switch, checkpoints)
    # MM2 read the engine's entries (it resumed right after them) and wrote its own under the same
    # bytes, into the same offsets partitions
    assert len(mm2_entries) > len(engine_entries)
    assert_progress_bytes(flow, mm2_entries, last_all)

    assert_offset_syncs_true(flow.offset_syncs(), produced, copied, n)
    assert checkpoints[: len(checkpoints_by_engine)] == checkpoints_by_engine
    assert_checkpoints_safe(checkpoints, produced, copied)
    for c in checkpoints_by_engine:
        if c.upstream_offset == in_engine_range[c.partition]:
            assert c.downstream_offset == exact_target_position(produced, copied, c.partition, c.upstream_offset)
    assert_audit_ok(flow, produced, SECOND)


def topic_names(cluster: ClusterHandle) -> set[str]:
    return set(cluster.admin().list_topics(timeout=10).topics)


def test_a_switch_resumes_from_the_offset_storage_topic_the_file_names(custom_progress_switch):
    """Java MM2 -> mirror-engine -> Java MM2 on a file with `offset.storage.topic` at the top level
    and another one under `<target>.`: MM2 keeps its progress in the top-level one, and each
    replicator resumes right after the other's last stored offset there. Neither MM2's default
    topic nor the shadowed one is ever created."""
    flow = custom_progress_switch
    shadowed = flow.extra[f"{flow.target_alias}.offset.storage.topic"]
    never_used = {wire.connect_offsets_topic(flow.source_alias), shadowed}
    first = sample_records(FIRST)
    produce(flow.source.bootstrap_servers, flow.topic, first)

    copy_with_mm2(flow, first)
    last_first = last_offsets(first)
    copied_by_mm2 = end_offsets(flow.target.bootstrap_servers, flow.remote)
    mm2_entries = flow.progress_entries()
    assert_progress_bytes(flow, mm2_entries, last_first)
    assert not never_used & topic_names(flow.target)  # MM2's precedence: the top-level key won

    produced = produce_more(flow, first, SECOND)
    run = copy_with_engine(flow, produced)
    last_all = last_offsets(produced)
    assert run.stop() == 0, run.log()
    assert (f"{flow.target_alias}.offset.storage.topic = {shadowed} is overridden by the top-level "
            f"offset.storage.topic = {flow.offsets_topic}, as in MM2") in run.log()
    copied_by_engine = end_offsets(flow.target.bootstrap_servers, flow.remote)
    assert_same_copy("Java MM2 -> mirror-engine (offset.storage.topic)", produced, read_all(
        flow.target.bootstrap_servers, flow.remote), copied_by_mm2, flow.stored(mm2_entries), [])
    engine_entries = flow.progress_entries()
    # MM2's entries and the engine's under the same bytes, each key in one partition of the topic
    assert len(engine_entries) > len(mm2_entries)
    assert_progress_bytes(flow, engine_entries, last_all)
    assert not never_used & topic_names(flow.target)

    # and back: MM2 reads the engine's progress from the same topic
    produced = produce_more(flow, produced, SECOND)
    copy_with_mm2(flow, produced)
    last_third = last_offsets(produced)
    assert_same_copy("mirror-engine -> Java MM2 (offset.storage.topic)", produced, read_all(
        flow.target.bootstrap_servers, flow.remote), copied_by_engine, flow.stored(engine_entries), [])
    assert_progress_bytes(flow, flow.progress_entries(), last_third)
    assert not never_used & topic_names(flow.target)
