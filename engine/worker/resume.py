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

What remains (docs/exactly-where-it-ends.md): records the target's leader holds beyond its high
watermark are not visible yet; if they become visible later they are duplicates, as before.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Callable, Iterator, NamedTuple

from confluent_kafka import TIMESTAMP_CREATE_TIME, Consumer, KafkaError, TopicPartition

from engine import wire
from engine.clients import settled_watermarks

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
            if end is not None and message.offset() >= end:
                return
            yield message
            if end is not None and message.offset() + 1 >= end:
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
