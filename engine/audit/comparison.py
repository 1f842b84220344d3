"""One partition's audit: the source records against the target records, by the offset map and by
content (xxhash64 over key, value, headers in order, and timestamp), and the report of the results."""

from __future__ import annotations

import bisect
import struct
from collections import Counter

import msgspec
import xxhash

from engine.offsets import wire


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
    kept = wire.without_provenance(headers, expected)
    return None if kept is None else (key, value, kept or None, timestamp)


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
