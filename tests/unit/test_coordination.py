"""Coordinator <-> worker messages, and a worker's byte budget."""

from engine import ipc


def test_messages_round_trip_as_json_lines():
    assign = ipc.Assign(
        flow="A->B", source_alias="A", target_alias="B", worker_index=1,
        partitions=[ipc.PartitionTask("orders", 0, "A.orders")],
        source_client={"bootstrap.servers": "h:1"}, target_client={"bootstrap.servers": "h:2"},
        offsets_topic="mm2-offsets.A.internal", offset_flush_interval_ms=5000, poll_timeout_ms=1000,
    )
    line = ipc.encode_line(assign)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert ipc.to_worker_decoder.decode(line) == assign
    assert ipc.to_worker_decoder.decode(ipc.encode_line(ipc.Stop())) == ipc.Stop()
    failed = ipc.Failed(worker_index=2, error="target refused t[0]@5")
    assert ipc.from_worker_decoder.decode(ipc.encode_line(failed)) == failed


def test_byte_budget_says_how_long_a_worker_is_ahead_of_its_share():
    from engine.worker.loop import ByteBudget

    now = [100.0]
    budget = ByteBudget(1_000_000, clock=lambda: now[0])
    assert budget.ahead_s(500_000) == 0.5  # half a second's budget sent at once
    now[0] = 100.5
    assert budget.ahead_s(500_000) == 0.0
    assert budget.ahead_s(3_000_000) == 2.5
    assert ByteBudget(0, clock=lambda: now[0]).ahead_s(10**12) == 0.0  # no limit
