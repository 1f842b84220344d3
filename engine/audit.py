"""Audit: does every source record that should be on the target sit there, unchanged?

Per partition, the offset map says which source offset was copied to which target offset. The
audit reads both partitions and checks, record by record, an xxhash64 over key, value, headers
(in order) and timestamp. It knows the flow's record filter (filtered records are expected gaps)
and reports, with their offsets:
  missing     source records the copy has passed but that are on the target nowhere
  differing   copies whose bytes differ from their source record
  duplicated  source records copied more than once (a restarted worker; at-least-once)
  foreign     target records the flow never wrote (another producer on a remote topic)
Source records below the source log start are not expected (retention removed them).
"""

from __future__ import annotations

import bisect
import logging
import struct
import time
import uuid
from collections import Counter

import msgspec
import xxhash
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicCollection, TopicPartition

from engine import wire
from engine.clients import client_config, settled_watermarks
from engine.config.model import ClusterConfig, EngineConfig, FlowConfig
from engine.offsets.checkpoints import OffsetMapReader, read_offset_map
from engine.policy import make_policy

READ_TIMEOUT_S = 300.0
_DENIED = (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED)


class AuditRefused(RuntimeError):
    """The principal may not read what the audit must read; the message names it."""


class PartitionAudit(msgspec.Struct):
    topic: str
    partition: int
    expected: int = 0  # source records the copy has passed that should be on the target
    copied: int = 0  # of those, found on the target unchanged
    filtered: int = 0
    duplicated: int = 0
    # of `copied`, those another replicator copied (Java MM2 before a switch): found on the target in
    # source order by content, outside the engine's offset map
    copied_by_others: int = 0
    missing: list[tuple[int, int]] = []  # source offset ranges, inclusive
    differing: list[tuple[int, int]] = []
    foreign: list[tuple[int, int]] = []  # target offset ranges

    @property
    def ok(self) -> bool:
        return not (self.missing or self.differing or self.foreign)


def record_digest(key: bytes | None, value: bytes | None, headers, timestamp: int) -> int:
    digest = xxhash.xxh64()
    for part in (key, value):
        digest.update(struct.pack(">i", -1 if part is None else len(part)))
        if part is not None:
            digest.update(part)
    headers = headers or ()
    digest.update(struct.pack(">i", len(headers)))
    for name, header_value in headers:
        encoded = name.encode()
        digest.update(struct.pack(">i", len(encoded)) + encoded)
        digest.update(struct.pack(">i", -1 if header_value is None else len(header_value)))
        if header_value is not None:
            digest.update(header_value)
    digest.update(struct.pack(">q", timestamp))
    return digest.intdigest()


def ranges(offsets: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for offset in sorted(offsets):
        if out and offset == out[-1][1] + 1:
            out[-1] = (out[-1][0], offset)
        else:
            out.append((offset, offset))
    return out


class _Message:
    """What the fast path's RecordFilter reads of a record."""

    __slots__ = ("_topic", "_partition", "_offset", "_key", "_value", "_headers")

    def __init__(self, topic, partition, offset, key, value, headers):
        self._topic, self._partition, self._offset = topic, partition, offset
        self._key, self._value, self._headers = key, value, headers

    def topic(self): return self._topic
    def partition(self): return self._partition
    def offset(self): return self._offset
    def key(self): return self._key
    def value(self): return self._value
    def headers(self): return self._headers


def read_partition(cluster: ClusterConfig, topic: str, partition: int) -> tuple[int, dict[int, tuple]]:
    """(log start, {offset: (key, value, headers, timestamp)}) from the log start to the current end."""
    consumer = Consumer(client_config(cluster, f"audit|{cluster.alias}", **{
        "group.id": f"mirror-engine-audit-{uuid.uuid4().hex}", "enable.auto.commit": False,
        "enable.partition.eof": True, "isolation.level": "read_committed"}))
    try:
        low, end = settled_watermarks(consumer, topic, partition)  # right after a leader change too
        records: dict[int, tuple] = {}
        if end <= low:
            return low, records
        consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
        deadline = time.monotonic() + READ_TIMEOUT_S
        done = False
        while not done:
            if time.monotonic() > deadline:
                raise RuntimeError(f"audit: {topic}[{partition}] on cluster {cluster.alias} not read in time")
            for m in consumer.consume(5000, timeout=0.5):
                if m.error() is not None:
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        done = True
                        continue
                    raise RuntimeError(f"audit: reading {topic}[{partition}] on {cluster.alias}: {m.error().str()}")
                if m.offset() >= end:
                    done = True
                    continue
                records[m.offset()] = (m.key(), m.value(), m.headers(), m.timestamp()[1])
                if m.offset() + 1 >= end:
                    done = True
        return low, records
    finally:
        consumer.close()


def audit_partition(topic: str, partition: int, source_low: int, source: dict[int, tuple], target: dict[int, tuple],
                    partition_map, keep, provenance_from: str | None = None) -> PartitionAudit:
    """`provenance_from`: the flow writes provenance headers naming this source cluster; each
    copy's last header must then name its source record, and is not part of the comparison."""
    result = PartitionAudit(topic, partition)
    runs = partition_map.runs if partition_map is not None else {}
    copied_through = -1
    if partition_map is not None:
        copied_through = max(partition_map.last_upstream,
                             partition_map.read_through[0] if partition_map.read_through else -1)
    coverage: Counter[int] = Counter()
    covered_targets: set[int] = set()
    differing: set[int] = set()
    for first_up, (first_down, last_up, _last_down) in runs.items():
        for upstream in range(max(first_up, source_low), last_up + 1):
            downstream = first_down + (upstream - first_up)
            copy = target.get(downstream)
            if copy is None:
                continue  # not on the target (deleted there): counted as missing below if expected
            covered_targets.add(downstream)
            original = source.get(upstream)
            if original is None:
                continue
            coverage[upstream] += 1
            if provenance_from is not None:
                copy = _without_provenance(copy, wire.Provenance(provenance_from, topic, partition, upstream))
            if copy is None or record_digest(*copy) != record_digest(*original):
                differing.add(upstream)
    missing = []
    for offset, record in source.items():
        if offset > copied_through or offset < source_low:
            continue
        if not keep(_Message(topic, partition, offset, record[0], record[1], record[2])):
            result.filtered += 1
            continue
        result.expected += 1
        if coverage[offset] == 0:
            missing.append(offset)
        elif offset not in differing:
            result.copied += 1
    foreign = [o for o in sorted(target) if o not in covered_targets]
    # past the engine's copy: what another replicator may have copied after it (MM2 after a switch back)
    beyond = [offset for offset, record in source.items() if offset > copied_through and offset >= source_low
              and keep(_Message(topic, partition, offset, record[0], record[1], record[2]))]
    still_missing, foreign, matched, again = _copies_by_others(source, target, missing + beyond, foreign)
    foreign, copied_twice = _unstored_copies(source, target, sorted(coverage), foreign, provenance_from is not None)
    matched_beyond = len(beyond) - sum(1 for o in still_missing if o > copied_through)
    missing = [o for o in still_missing if o <= copied_through]
    result.expected += matched_beyond  # past the engine's copy, a record counts once someone copied it
    result.copied += matched
    result.copied_by_others = matched
    result.duplicated = sum(count - 1 for count in coverage.values() if count > 1) + again + copied_twice
    result.missing = ranges(missing)
    result.differing = ranges(list(differing))
    result.foreign = ranges(foreign)
    return result


def _copies_by_others(source: dict[int, tuple], target: dict[int, tuple], missing: list[int],
                      foreign: list[int]) -> tuple[list[int], list[int], int, int]:
    """Pairs source records the offset map does not cover with target records outside it, in order
    and by content: the copies of another replicator (MM2 copied the start, the engine went on from
    its stored offsets). A source record that replicator skipped stays missing; one it copied twice
    (after a restart of its own) is a duplicate; any other target record stays foreign. Returns what
    stays missing and foreign, the pairs, and the duplicates."""
    if not missing or not foreign:
        return missing, foreign, 0, 0
    wanted = sorted(missing)
    positions: dict[int, list[int]] = {}  # digest -> indexes into wanted, ascending
    for index, offset in enumerate(wanted):
        positions.setdefault(record_digest(*source[offset]), []).append(index)
    matched: set[int] = set()
    still_foreign, again, next_index = [], 0, 0
    for downstream in foreign:
        candidates = positions.get(record_digest(*target[downstream]), [])
        ahead = bisect.bisect_left(candidates, next_index)
        if ahead < len(candidates):
            matched.add(wanted[candidates[ahead]])
            next_index = candidates[ahead] + 1
        elif candidates and wanted[candidates[ahead - 1]] in matched:
            again += 1
        else:
            still_foreign.append(downstream)
    return [o for o in wanted if o not in matched], still_foreign, len(matched), again


def _unstored_copies(source: dict[int, tuple], target: dict[int, tuple], covered: list[int], foreign: list[int],
                     provenance: bool) -> tuple[list[int], int]:
    """Target records outside the offset map that are second copies of records the map covers: the
    engine copied them, stopped before it stored their run (a crash with the resume after the
    target's tail off, or a retry the producer could not make idempotent), and copied them again.
    They pair in order and by content (without the provenance header, where the flow writes one).
    Returns what stays foreign and the duplicates found."""
    if not foreign or not covered:
        return foreign, 0
    copies = {o: _without_last_provenance(target[o]) for o in foreign} if provenance else target
    _unpaired, still_foreign, paired, again = _copies_by_others(source, copies, covered, foreign)
    return still_foreign, paired + again


def _without_last_provenance(copy: tuple) -> tuple:
    key, value, headers, timestamp = copy
    if headers and headers[-1][0] == wire.PROVENANCE_HEADER:
        return key, value, headers[:-1] or None, timestamp
    return copy


def _without_provenance(copy: tuple, expected: wire.Provenance) -> tuple | None:
    """The copy without this hop's provenance header; None when that header is not as expected."""
    key, value, headers, timestamp = copy
    if not headers or headers[-1][0] != wire.PROVENANCE_HEADER:
        return None
    try:
        if wire.Provenance.decode(headers[-1][1] or b"") != expected:
            return None
    except wire.WireError:
        return None
    return key, value, headers[:-1] or None, timestamp


def _came_from(headers, cluster: str) -> bool:
    """A record the flow skips as a record-level cycle: its provenance names the target cluster."""
    for name, value in headers or ():
        if name == wire.PROVENANCE_HEADER and value:
            try:
                if wire.Provenance.decode(value).cluster == cluster:
                    return True
            except wire.WireError:
                continue
    return False


def audit_flow(config: EngineConfig, flow: FlowConfig, topics: list[str] | None = None) -> list[PartitionAudit]:
    """Audits every partition of the flow's replicated topics (or of `topics`)."""
    from confluent_kafka.admin import AdminClient

    from engine.worker.loop import build_record_filter

    source, target = config.cluster(flow.source), config.cluster(flow.target)
    policy = make_policy(flow.policy_class, flow.source, flow.separator, flow.internal_separator_enabled)
    admin = AdminClient(client_config(source, f"audit|{flow.name}|admin"))
    metadata = admin.list_topics(timeout=15).topics
    topic_filter = flow.topic_filter()
    chosen = topics if topics is not None else sorted(
        t for t in metadata if topic_filter.matches(t) and not policy.is_internal_topic(t)
        and not policy.is_cycle(t, flow.target))
    # a topic the principal may not describe looks absent, without an error: the audit would pass
    # with nothing verified, or call every copy foreign without the offset map
    from engine.security.acls import LITERAL, WILDCARD, regex_patterns

    named = [name for name, kind in regex_patterns(flow.topics) if kind == LITERAL and name != WILDCARD]
    refuse_unreadable(admin, source, [t for t in (topics if topics is not None else named) if t not in metadata])
    target_admin = AdminClient(client_config(target, f"audit|{flow.name}|target-admin"))
    refuse_unreadable(target_admin, target, [wire.offset_map_topic(flow.source)]
                      + [policy.format_remote_topic(flow.source, t) for t in chosen])
    offset_map = read_offset_map(target, flow.source, f"{flow.name}|audit|offset-map-consumer")
    record_filter = build_record_filter(flow.record_filter)
    results = []
    for topic in chosen:
        keep = record_keeper(None if policy.is_heartbeats_topic(topic) else record_filter,
                             flow.target if flow.provenance_header_enabled else None)
        remote = policy.format_remote_topic(flow.source, topic)
        for partition in sorted(metadata[topic].partitions):
            if flow.record_filter and flow.record_filter.partitions is not None \
                    and partition not in flow.record_filter.partitions and not policy.is_heartbeats_topic(topic):
                continue
            source_low, source_records = read_partition(source, topic, partition)
            _target_low, target_records = read_partition(target, remote, partition)
            results.append(audit_partition(topic, partition, source_low, source_records, target_records,
                                           offset_map.partitions.get((topic, partition)), keep,
                                           flow.source if flow.provenance_header_enabled else None))
    return results


def refuse_unreadable(admin, cluster: ClusterConfig, topics: list[str]) -> None:
    """Raises, naming them, when the principal may not describe some of these topics."""
    if not topics:
        return
    denied = []
    for name, future in admin.describe_topics(TopicCollection(topics), request_timeout=30).items():
        try:
            future.result()
        except KafkaException as error:
            if error.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                denied.append(name)
    if denied:
        raise AuditRefused(f"audit: not authorised to read {', '.join(sorted(denied))} on cluster {cluster.alias}: "
                           f"the principal needs an ALLOW READ ACL on each (see `mirror-engine acls --for audit`)")


def record_keeper(record_filter, cycle_target: str | None):
    """Whether the flow copies a source record: its record filter (None: every record), and with
    provenance headers on, not a record whose provenance names the target (a record-level cycle)."""
    keep = (lambda message: True) if record_filter is None else record_filter.keeps
    if cycle_target is None:
        return keep
    return lambda message: not _came_from(message.headers(), cycle_target) and keep(message)


def report(results: list[PartitionAudit]) -> str:
    lines = [f"{'topic':<40} {'partition':>9} {'expected':>9} {'copied':>9} {'filtered':>9} {'dupl.':>6}  verdict"]
    for r in results:
        problems = []
        if r.missing:
            problems.append("missing " + ", ".join(f"{a}-{b}" for a, b in r.missing[:5]))
        if r.differing:
            problems.append("differing " + ", ".join(f"{a}-{b}" for a, b in r.differing[:5]))
        if r.foreign:
            problems.append("foreign target offsets " + ", ".join(f"{a}-{b}" for a, b in r.foreign[:5]))
        lines.append(f"{r.topic:<40} {r.partition:>9} {r.expected:>9} {r.copied:>9} {r.filtered:>9} "
                     f"{r.duplicated:>6}  {'; '.join(problems) or 'ok'}")
    verdict = "AUDIT OK" if all(r.ok for r in results) else "AUDIT FAILED"
    by_others = sum(r.copied_by_others for r in results)
    lines.append(f"{verdict}: {sum(r.copied for r in results)} of {sum(r.expected for r in results)} records "
                 f"verified in {len(results)} partitions, {sum(r.duplicated for r in results)} duplicates"
                 + (f"; {by_others} of them copied by another replicator (outside the engine's offset map)"
                    if by_others else ""))
    return "\n".join(lines)


class SamplingAuditor:
    """The engine's continuous audit: at every pass, the newest copied record of each partition is
    read on both clusters and compared, as the full audit compares them. The offset verified last
    is exported per partition (mirror_engine_audit_verified_offset); a mismatch is logged with its
    offsets and counted."""

    def __init__(self, config: EngineConfig, flow: FlowConfig):
        self.flow = flow
        self.source, self.target = config.cluster(flow.source), config.cluster(flow.target)
        self.map_reader = OffsetMapReader(self.target, flow.source, f"{flow.name}|audit-sampler|offset-map-consumer")
        self.verified: dict[tuple[str, int], int] = {}
        self.mismatches = 0

    def sample(self, partitions: list[tuple[str, int, str]]) -> None:
        """One pass over (source topic, partition, remote topic); blocking, run it in a thread."""
        offset_map = self.map_reader.read_to_end()
        for topic, partition, remote in partitions:
            partition_map = offset_map.partitions.get((topic, partition))
            if partition_map is None or not partition_map.runs:
                continue
            upstream = partition_map.last_upstream
            if upstream <= self.verified.get((topic, partition), -1):
                continue
            downstream = partition_map.translate(upstream)
            original = read_record(self.source, topic, partition, upstream)
            if original is None or downstream is None:
                continue  # gone from the source (retention): nothing to compare
            copy = read_record(self.target, remote, partition, downstream)
            if copy is not None and self.flow.provenance_header_enabled:
                copy = _without_provenance(copy, wire.Provenance(self.flow.source, topic, partition, upstream))
            if copy is not None and record_digest(*copy) == record_digest(*original):
                self.verified[(topic, partition)] = upstream
                continue
            self.mismatches += 1
            logging.getLogger(__name__).error(
                "%s: audit sample: %s[%d]@%d on cluster %s does not match its copy %s[%d]@%d on cluster %s",
                self.flow.name, topic, partition, upstream, self.source.alias, remote, partition, downstream,
                self.target.alias)

    def close(self) -> None:
        self.map_reader.close()


def read_record(cluster: ClusterConfig, topic: str, partition: int, offset: int) -> tuple | None:
    """(key, value, headers, timestamp) of one record, None when the offset holds none."""
    consumer = Consumer(client_config(cluster, f"audit|{cluster.alias}", **{
        "group.id": f"mirror-engine-audit-{uuid.uuid4().hex}", "enable.auto.commit": False,
        "enable.partition.eof": True, "isolation.level": "read_committed", "auto.offset.reset": "error"}))
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            for m in consumer.consume(1, timeout=0.5):
                if m.error() is not None:
                    if m.error().code() in _DENIED:  # not "no record": the audit cannot look
                        raise AuditRefused(f"audit: reading {topic}[{partition}] on cluster {cluster.alias}: "
                                           f"not authorised: {m.error().str()}")
                    return None  # the end of the partition, or the offset is gone
                if m.offset() != offset:
                    return None  # compacted away, or a transaction marker
                return m.key(), m.value(), m.headers(), m.timestamp()[1]
        return None
    finally:
        consumer.close()
