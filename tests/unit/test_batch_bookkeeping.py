"""Bookkeeper.sent_batch / delivered_batch (the batch loop's one call per batch) against sent / delivered
(one call per record, as the Python loop makes them): the same progress, offset syncs, offset map and counts."""

from __future__ import annotations

from engine._fastpath import Bookkeeper

BATCHES = [(100, 10, 1_700_000_000_010, 1234, 1000), (110, 10, 1_700_000_000_020, 987, 901), (120, 1, -1, 70, 9)]
TARGET = 500


def _bookkeeper() -> tuple[Bookkeeper, object]:
    bookkeeper = Bookkeeper()
    bookkeeper.offset_lag_max = 7
    return bookkeeper, bookkeeper.add_partition("orders", "A.orders", 3, -1)


def _share(total: int, count: int, i: int) -> int:
    return total // count + (total % count if i == 0 else 0)


def test_one_call_per_batch_accounts_as_one_call_per_record():
    per_record, ledger_a = _bookkeeper()
    per_batch, ledger_b = _bookkeeper()
    target = TARGET
    for base, count, timestamp, size, value_bytes in BATCHES:
        for i in range(count):
            per_record.sent(ledger_a, base + i, timestamp, _share(size, count, i))
        per_record.records_sent += count
        per_batch.sent_batch(ledger_b, base, count, timestamp, size, value_bytes)
        assert ledger_b.in_flight == ledger_a.in_flight == count
        for i in range(count):
            per_record.delivered("A.orders", 3, target + i, _share(value_bytes, count, i), None, 0)
        per_batch.delivered_batch("A.orders", 3, target, count, value_bytes)
        target += count + 5  # the target's offsets jump between batches: a new offset-map run, a sync

    fields = ("last_acked_source", "last_acked_target", "acked_records", "acked_value_bytes", "in_flight",
              "newest_acked_timestamp")
    assert [getattr(ledger_b, f) for f in fields] == [getattr(ledger_a, f) for f in fields]
    assert (ledger_b.last_acked_source, ledger_b.last_acked_target) == (120, TARGET + 10 + 5 + 10 + 5)
    assert per_batch.take_offset_syncs() == per_record.take_offset_syncs() != []
    assert per_batch.take_offset_runs() == per_record.take_offset_runs() != []
    assert (per_batch.records_sent, per_batch.records_acked, per_batch.bytes_sent) == (
        per_record.records_sent, per_record.records_acked, per_record.bytes_sent) == (21, 21, 1234 + 987 + 70)
    # and what only the batch call does: every record counted as polled, MM2's byte-count
    assert ledger_b.polled_value_bytes == 1000 + 901 + 9


def test_a_batch_of_a_partition_no_longer_held_is_ignored():
    bookkeeper, _ = _bookkeeper()
    assert bookkeeper.delivered_batch("A.other", 0, 10, 5, 50) == 0
    assert bookkeeper.records_acked == 0
