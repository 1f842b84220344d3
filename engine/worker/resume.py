"""Where a partition's copy really ends: resume after what the target already holds.

Progress is stored every `offset.flush.interval.ms`, so after a crash the target may hold copies of
source records past the stored progress (acknowledged, or written by requests in flight when the
process died). Copying from the stored progress would write them twice. When the engine is the only
writer of the remote partition, its tail after the copy of the stored position is, in order, the next
source records the flow keeps (idempotent acks=all producer: the target's order is the source's; the
record filter is deterministic). Reading both and matching them record by record finds where the copy
ends; the worker resumes after it and stores that progress with its offset-map runs.

Anything that does not match in order means another writer (or a replicator before this one) and the
stored progress is kept: records are copied again rather than ever skipped.

What remains (docs/restarts-without-duplicates.md): records the target's leader holds beyond its high
watermark are not visible yet; if they become visible later they are duplicates, as before.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import NamedTuple, cast

from confluent_kafka import TIMESTAMP_CREATE_TIME, Consumer, KafkaError, KafkaException, TopicPartition

from engine import ipc
from engine.clients import client_config, settled_watermarks
from engine.config.model import ClusterConfig
from engine.offsets import wire
from engine.offsets.checkpoints import read_offset_map
from engine.offsets.translation import PartitionMap
from engine.worker.kept_records import build_record_filter, record_keeper
from engine.worker.progress import ProgressStore
from engine.worker.relays import consumer_settings

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 60.0
BATCH = 2000


class Resume(NamedTuple):
    """The outcome for one partition: where to resume and what the target already held."""

    last_copied: int  # the source offset to resume after
    found: int  # source records past the stored progress already on the target (duplicates avoided)
    runs: list[tuple[str, int, int, int, int, int]]  # offset-map runs of those copies
    fallback: str | None  # why the stored progress is kept, when the tail could not be matched
    unmatched: int = 0  # target records past the copy of the stored position, when it is kept


def _records(consumer: Consumer, topic: str, partition: int, start: int, end: int | None,
             what: str) -> Iterator:
    """The messages of topic[partition] from `start`, up to `end` (exclusive) or the end of the log."""
    consumer.assign([TopicPartition(topic, partition, start)])
    deadline = time.monotonic() + READ_TIMEOUT_S
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} {topic}[{partition}] not read within {READ_TIMEOUT_S:.0f}s")
        messages = consumer.consume(BATCH, timeout=0.5)
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    return
                raise RuntimeError(f"reading {what} {topic}[{partition}]: {error.str()}")
            offset = cast(int, message.offset())  # a record, not an event: it has an offset
            if end is not None and offset >= end:
                return
            yield message
            if end is not None and offset + 1 >= end:
                return


def same_record(source, copy, provenance: wire.Provenance | None) -> bool:
    """The copy holds the source record: key, value, headers (plus this hop's provenance header when the
    flow writes one), and the timestamp unless the remote topic stamps its own (LogAppendTime)."""
    headers = copy.headers() or []
    if provenance is not None:
        headers = wire.without_provenance(headers, provenance)
        if headers is None:
            return False
    copy_type, copy_ts = copy.timestamp()
    return (copy.key() == source.key() and copy.value() == source.value()
            and list(headers) == list(source.headers() or [])
            and (copy_type != TIMESTAMP_CREATE_TIME or copy_ts == source.timestamp()[1]))


def find_copied_tail(source_config: dict, target_config: dict, topic: str, remote_topic: str, partition: int,
                     stored: int, tail_start: int, keep: Callable, provenance_from: str | None) -> Resume:
    """Matches the target's records from `tail_start` (where the copy of source offset stored + 1 goes)
    to its end with the source records after `stored` that the flow keeps."""
    group = f"mirror-engine-resume-{uuid.uuid4().hex}"
    settings = {"group.id": group, "enable.auto.commit": False, "enable.partition.eof": True}
    target = Consumer({**target_config, **settings, "isolation.level": "read_uncommitted"})
    source = Consumer({**source_config, **settings})
    try:
        _, target_end = settled_watermarks(target, remote_topic, partition)
        if target_end <= tail_start:
            return Resume(stored, 0, [], None)
        copies = _records(target, remote_topic, partition, tail_start, target_end, "target")
        originals = (m for m in _records(source, topic, partition, stored + 1, None, "source") if keep(m))
        pairs: list[tuple[int, int]] = []
        for copy in copies:
            original = next(originals, None)
            provenance = None if provenance_from is None or original is None else \
                wire.Provenance(provenance_from, topic, partition, original.offset())
            if original is None or not same_record(original, copy, provenance):
                where = "has no record there" if original is None else f"holds another record at {original.offset()}"
                return Resume(stored, 0, [], (
                    f"{remote_topic}[{partition}]@{copy.offset()} on the target is not the copy of the next source "
                    f"record the flow keeps (the source {where}): another producer writes to the remote topic"),
                    target_end - tail_start)
            pairs.append((original.offset(), copy.offset()))
        if not pairs:
            # the offsets up to the end hold no record a consumer receives (transaction markers of an
            # exactly-once run before this one): nothing was copied past the stored progress
            return Resume(stored, 0, [], None)
        return Resume(pairs[-1][0], len(pairs), runs_of(topic, partition, pairs), None)
    finally:
        target.close()
        source.close()


def copy_resumes_at(partition_map: PartitionMap | None, last: int) -> int | None:
    """The target offset where the copy of the first source record after `last` (stored progress, -1:
    none) goes, or None when the offset map cannot say (the copy is someone else's)."""
    if last >= 0:
        return partition_map.target_after(last) if partition_map is not None else None
    # nothing stored yet (a crash before the first progress store): the flow's copy starts at its
    # first run, whose source offset may be past the log start when a filter dropped the records before
    # it (the tail's match by content checks that), or at the remote topic's start without a map
    if partition_map is None or not partition_map.runs:
        return 0
    return partition_map.runs[min(partition_map.runs)][0]


def runs_of(topic: str, partition: int, pairs: list[tuple[int, int]]) -> list[tuple[str, int, int, int, int, int]]:
    """Offset-map runs (topic, partition, first up, first down, last up, last down) of (source, target)
    pairs in order: a run goes on while both offsets step by one."""
    runs: list[list[int]] = []
    for up, down in pairs:
        if runs and up == runs[-1][2] + 1 and down == runs[-1][3] + 1:
            runs[-1][2], runs[-1][3] = up, down
        else:
            runs.append([up, down, up, down])
    return [(topic, partition, first_up, first_down, last_up, last_down)
            for first_up, first_down, last_up, last_down in runs]


class TargetTailResume:
    """Where a starting worker's partitions resume: after the copies the target already holds past
    their stored progress. Counts, per partition, the records found already copied (duplicates
    avoided) and the target records it could not match (copied again), for the worker's reports."""

    def __init__(self, progress: ProgressStore):
        self.progress = progress
        self.found: dict[tuple[str, int], int] = {}
        self.unmatched: dict[tuple[str, int], int] = {}
        self.fallbacks_said: set[str] = set()  # partitions whose fallback was said (once each)

    def resume(self, assignment: ipc.Assign, stored: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
        """Progress moved past the copies the target already holds, stored with their offset-map runs
        before the first record is produced; a partition whose tail does not match keeps its stored
        progress, and says why once."""
        role = f"{assignment.flow}|MirrorSourceConnector-{assignment.worker_index}|resume"
        target = ClusterConfig(assignment.target_alias, assignment.target_client["bootstrap.servers"],
                               {k: v for k, v in assignment.target_client.items() if k != "bootstrap.servers"})
        offset_map = read_offset_map(target, assignment.source_alias, f"{role}|offset-map-consumer")
        record_filter = build_record_filter(assignment.record_filter)
        # the worker's own consumer settings (isolation level), from the log start where nothing is stored
        source_config = client_config(assignment.source_client, f"{role}|source-consumer", **{
            **consumer_settings(assignment.flow, assignment.consumer_overrides), "auto.offset.reset": "earliest"})
        target_config = client_config(assignment.target_client, f"{role}|target-consumer")
        resumed = dict(stored)
        runs, progress = [], []
        # one consumer asks every target end first: after a clean stop no tail exists, and a partition
        # without one costs no reader of its own
        ends = Consumer({**target_config, "group.id": f"mirror-engine-resume-{assignment.flow}"})
        try:
            target_ends = {}
            for task in assignment.partitions:
                try:
                    target_ends[(task.topic, task.partition)] = ends.get_watermark_offsets(
                        TopicPartition(task.remote_topic, task.partition), timeout=15)[1]
                except KafkaException:
                    pass  # read again below, where a failure is a fallback said once
        finally:
            ends.close()
        for task in assignment.partitions:
            last = stored.get((task.topic, task.partition), -1)
            tail_start = copy_resumes_at(offset_map.partitions.get((task.topic, task.partition)), last)
            name = f"{task.topic}[{task.partition}]"
            if tail_start is None:
                self.fallback(name, f"the offset map does not place source offset {last + 1} on the target "
                                     f"(copied by another replicator before this engine?)")
                continue
            end = target_ends.get((task.topic, task.partition))
            if end is not None and end <= tail_start:
                continue  # nothing on the target past the copy of the stored progress
            keep = record_keeper(record_filter if task.apply_filter else None,
                                 assignment.target_alias if assignment.provenance else None)
            try:
                found = find_copied_tail(source_config, target_config, task.topic, task.remote_topic, task.partition,
                                         last, tail_start, keep,
                                         assignment.source_alias if assignment.provenance else None)
            except Exception as error:  # never a reason to stop copying: at worst records are copied twice
                self.fallback(name, f"the target's tail could not be read: {type(error).__name__}: {error}")
                continue
            if found.fallback is not None:
                self.fallback(name, found.fallback)
                key = (task.topic, task.partition)
                self.unmatched[key] = self.unmatched.get(key, 0) + found.unmatched
            elif found.found:
                log.info("%s: %d records after stored progress %d are already on the target (up to source offset "
                         "%d): resuming after them, none copied twice", name, found.found, last, found.last_copied)
                resumed[(task.topic, task.partition)] = found.last_copied
                runs += found.runs
                progress.append((task.topic, task.partition, found.last_copied))
                key = (task.topic, task.partition)
                self.found[key] = self.found.get(key, 0) + found.found
        if progress:
            self.progress.store_runs(runs)  # the map first: progress never runs ahead of it
            self.progress.store(progress)
        return resumed

    def fallback(self, partition: str, reason: str) -> None:
        if partition not in self.fallbacks_said:
            self.fallbacks_said.add(partition)
            log.warning("%s resumes from its stored progress; records copied after it may be copied again: %s",
                        partition, reason)
