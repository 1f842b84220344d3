"""The audit's per-partition comparison, with copies another replicator made before a switch."""

from __future__ import annotations

from engine.audit.comparison import audit_partition, report
from engine.offsets.translation import PartitionMap


def records(offsets, shift: int = 0) -> dict[int, tuple]:
    """offset -> (key, value, headers, timestamp); shift moves the target offsets."""
    return {o + shift: (f"k{o}".encode(), f"v{o}".encode(), [("h", b"x")], 1_700_000_000_000 + o) for o in offsets}


def engine_map(first_up: int, first_down: int, last_up: int) -> PartitionMap:
    partition_map = PartitionMap()
    partition_map.add(first_up, first_down, last_up, first_down + last_up - first_up)
    return partition_map


def keep_all(_message) -> bool:
    return True


def test_copies_another_replicator_made_before_the_engine_took_over_count_as_copied():
    source = records(range(10))
    target = {**records(range(5)), **records(range(5, 10))}  # MM2: 0..4 at 0..4; the engine: 5..9 at 5..9
    result = audit_partition("t", 0, 0, source, target, engine_map(5, 5, 9), keep_all)
    assert (result.ok, result.expected, result.copied, result.copied_by_others) == (True, 10, 10, 5)
    assert "AUDIT OK: 10 of 10 records verified in 1 partitions, 0 duplicates; 5 of them copied by another " \
           "replicator" in report([result])


def test_the_other_replicators_gaps_duplicates_and_strangers_are_still_found():
    source = records(range(10))
    # MM2 copied 0, 1, 3, 4 (it lost 2), restarted and copied 3 and 4 again; a stranger wrote one
    # record; then the engine copied 5..9 at 7..11
    originals = records(range(5))
    mm2_part = [originals[0], originals[1], originals[3], originals[4], originals[3], originals[4],
                (b"stranger", b"!", None, 1)]
    target = {offset: record for offset, record in enumerate(mm2_part)}
    target.update(records(range(5, 10), shift=2))
    result = audit_partition("t", 0, 0, source, target, engine_map(5, 7, 9), keep_all)
    assert result.missing == [(2, 2)]
    assert result.duplicated == 2
    assert result.foreign == [(6, 6)]
    assert (result.expected, result.copied, result.copied_by_others, result.ok) == (10, 9, 4, False)


def test_copies_another_replicator_made_after_the_engine_count_too():
    source = records(range(10))
    target = {**records(range(6)), **records(range(6, 9))}  # the engine 0..5; then MM2 6..8; 9 not yet copied
    result = audit_partition("t", 0, 0, source, target, engine_map(0, 0, 5), keep_all)
    assert (result.ok, result.expected, result.copied, result.copied_by_others) == (True, 9, 9, 3)


def two_runs(first: tuple[int, int, int], second: tuple[int, int, int]) -> PartitionMap:
    partition_map = PartitionMap()
    for first_up, first_down, last_up in (first, second):
        partition_map.add(first_up, first_down, last_up, first_down + last_up - first_up)
    return partition_map


def test_copies_whose_run_was_never_stored_are_duplicates_not_strangers():
    # the engine copied 0..9 at 0..9, stored the run of 0..4 only, was killed, and copied 5..9 again at 10..14
    source = records(range(10))
    target = {**records(range(10)), **records(range(5, 10), shift=5)}
    result = audit_partition("t", 0, 0, source, target, two_runs((0, 0, 4), (5, 10, 9)), keep_all)
    assert (result.ok, result.expected, result.copied, result.duplicated, result.foreign) == (True, 10, 10, 5, [])
    assert "AUDIT OK: 10 of 10 records verified in 1 partitions, 5 duplicates" in report([result])


def test_unstored_copies_with_provenance_headers_are_duplicates_and_a_stranger_stays_foreign():
    from engine.offsets import wire

    def copy(offset: int) -> tuple:
        key, value, headers, timestamp = records([offset])[offset]
        provenance = (wire.PROVENANCE_HEADER, wire.Provenance("A", "t", 0, offset).encode())
        return key, value, headers + [provenance], timestamp

    source = records(range(6))
    # 0..5 at 0..5 (run of 0..2 stored), a stranger at 6, then 3..5 again at 7..9
    target = {o: copy(o) for o in range(6)} | {6: (b"stranger", b"!", None, 1)} | {7 + i: copy(3 + i) for i in range(3)}
    result = audit_partition("t", 0, 0, source, target, two_runs((0, 0, 2), (3, 7, 5)), keep_all, "A")
    assert (result.expected, result.copied, result.duplicated, result.foreign) == (6, 6, 3, [(6, 6)])
    assert not result.ok
