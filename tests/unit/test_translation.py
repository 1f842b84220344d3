"""Exact translation from runs of copies: gaps, duplicates, the live end, the offset-map bytes."""

import pytest

from engine.offsets import wire
from engine.offsets.translation import PartitionMap


def make(*runs):
    m = PartitionMap()
    for run in runs:
        m.add(*run)
    return m


def test_contiguous_copy_translates_one_to_one_with_a_delta():
    m = make((100, 0, 199, 99))  # source 100..199 copied to target 0..99
    assert m.translate(100) == 0
    assert m.translate(150) == 50
    assert m.translate(199) == 99
    assert m.translate(200) == 100  # lag 0: the next target offset, never past the end
    assert m.translate(201) is None  # the copy has not reached it: no exact answer yet
    assert m.translate(0) == 0  # before the copy started: its first record


def test_a_position_in_a_gap_resumes_at_the_next_copied_record():
    # 10..19 copied, 20..29 filtered or compacted away, 30..39 copied
    m = make((10, 0, 19, 9), (30, 10, 39, 19))
    assert m.translate(19) == 9
    assert m.translate(20) == 10
    assert m.translate(25) == 10
    assert m.translate(30) == 10
    assert m.translate(31) == 11


def test_duplicates_from_a_restarted_worker_resume_at_the_newest_copy():
    # 0..99 copied to 0..99; progress had been stored at 49; the restart copied 50..99 again
    m = make((0, 0, 99, 99), (50, 100, 99, 149), (100, 150, 120, 170))
    assert m.translate(20) == 20  # not re-copied: the only copy
    assert m.translate(50) == 100  # the newest copy of 50
    assert m.translate(99) == 149
    assert m.translate(100) == 150
    assert m.translate(121) == 171


def test_runs_below_the_log_start_are_dropped():
    m = make((0, 0, 9, 9), (10, 10, 19, 19))
    assert m.drop_below(10) == [0]
    assert m.translate(0) == 10


def test_offset_run_bytes_round_trip():
    run = wire.OffsetRun("orders", 3, 1000, 998, 1999, 1997)
    assert run.key().hex() == "00066f7264657273" + "00000003" + "00000000000003e8"
    assert run.value().hex() == "0000" + "00000000000003e6" + "00000000000007cf" + "00000000000007cd"
    assert wire.OffsetRun.decode(run.key(), run.value()) == run
    assert wire.offset_map_topic("A") == "mm2-offset-map.A.internal"
    from engine.offsets.policy import DefaultReplicationPolicy

    assert DefaultReplicationPolicy().is_internal_topic(wire.offset_map_topic("A"))  # never replicated


@pytest.mark.parametrize("position", range(0, 45))
def test_translation_matches_a_brute_force_oracle(position):
    # source offsets copied, in copy order (with a duplicate range), and the target offset of each
    copies = [(u, d) for d, u in enumerate(list(range(5, 15)) + list(range(10, 15)) + list(range(20, 40)))]
    m = make((5, 0, 14, 9), (10, 10, 14, 14), (20, 15, 39, 34))
    following = [(u, d) for u, d in copies if u >= position]
    if following:
        first = min(u for u, _ in following)
        expected = max(d for u, d in following if u == first)
    else:
        expected = 35 if position == 40 else None
    assert m.translate(position) == expected


def test_read_through_covers_markers_after_the_last_record():
    from engine.offsets.translation import READ_THROUGH

    m = make((0, 0, 9, 9))
    m.add(READ_THROUGH, 10, 11, -1)  # offsets 10 and 11 were a commit marker and an aborted record
    assert m.translate(10) == 10
    assert m.translate(12) == 10  # the group sits after the marker: the next copy goes to 10
    assert m.translate(13) is None
    m.add(12, 10, 15, 13)  # later, 12..15 copied to 10..13
    assert m.translate(12) == 10 and m.translate(16) == 14


def test_translate_back_maps_a_target_position_to_its_source_record():
    from engine.offsets.translation import READ_THROUGH

    m = make((10, 0, 19, 9), (30, 10, 39, 19))
    assert m.translate_back(0) == 10
    assert m.translate_back(9) == 19
    assert m.translate_back(10) == 30  # the record after the gap
    assert m.translate_back(19) == 39
    assert m.translate_back(20) == 40  # at the end of the copy
    m.add(READ_THROUGH, 20, 42, -1)  # 40..42 held markers only
    assert m.translate_back(20) == 43
    # round trip: forward then back lands on the first record at or after the position
    for position in range(10, 40):
        back = m.translate_back(m.translate(position))
        assert back == (position if not 20 <= position < 30 else 30)


def test_after_a_switch_from_mm2_its_part_of_the_copy_is_not_placed_by_the_map():
    # Java MM2 copied 0..999 to 0..999 and stored its progress; the engine continued at 1000
    m = make((1000, 1000, 1499, 1499))
    assert m.translate(500) is None  # MM2's copies are not in the map: no guess
    assert m.translate(1000) == 1000 and m.translate(1200) == 1200 and m.translate(1500) == 1500


def test_a_gap_holding_another_replicator_s_copies_resumes_after_the_engine_s_copies_before_it():
    # the engine copied 0..999, MM2 1000..1999 (to 1000..1999), the engine again from 2000
    m = make((0, 0, 999, 999), (2000, 2000, 2499, 2499))
    assert m.translate(1500) == 1000  # MM2's copies 1000.. are read again, none skipped
    assert m.translate(999) == 999 and m.translate(2000) == 2000
    # a gap the engine saw itself (filtered records: nothing on the target in it) stays exact
    m = make((0, 0, 999, 999), (1010, 1000, 1499, 1489))
    assert m.translate(1005) == 1000


def test_positions_below_the_source_log_start_resume_at_the_first_record_left():
    m = make((0, 0, 9, 9), (12, 10, 19, 17))  # 10, 11 filtered
    assert m.drop_below(11) == [0]
    assert m.translate(0) == 10 and m.translate(11) == 10  # nothing on the source before 12


def test_failover_says_when_the_copy_keeps_the_source_offsets():
    from engine.offsets.failover import Move, table

    same = [Move("A.orders", 0, 120, None, 120, ""), Move("A.orders", 1, 7, 3, 7, "")]
    shifted = [Move("A.orders", 0, 120, None, 118, ""), Move("A.orders", 1, 7, 3, 7, "")]
    note = "every new offset equals the group's position on A"
    assert table("g", "A", "B", same).splitlines()[-1].startswith(note)
    assert note not in table("g", "A", "B", shifted)
    assert note not in table("g", "A", "B", [])


def test_the_target_offset_after_stored_progress_skips_filtered_records_at_its_end():
    from engine.offsets.translation import PartitionMap

    partition_map = PartitionMap()
    partition_map.add(0, 0, 9, 9)      # source 0-9 at target 0-9
    partition_map.add(11, 10, 14, 13)  # 10 filtered; 11-14 at 10-13
    # stored progress 15 (filtered): the next copy goes after 14's copy, where 16's would
    assert partition_map.target_after(15) == 14
    assert partition_map.target_after(14) == 14
    assert partition_map.target_after(12) == 12
    assert partition_map.target_after(10) == 10  # 10 was filtered: after 9's copy
    # a run stored before a crash, past the stored progress, does not count
    partition_map.add(16, 14, 20, 18)
    assert partition_map.target_after(15) == 14
    # a record copied twice (a restart without resuming): the newest copy counts
    partition_map.add(12, 19, 14, 21)
    assert partition_map.target_after(15) == 22
    # read through markers up to 25, next copy at 30
    partition_map.add(-1, 30, 25, -1)
    assert partition_map.target_after(25) == 30
    assert PartitionMap().target_after(5) is None
