"""First end-to-end slice: A->B copies records exactly and stores progress where MM2 does."""

from __future__ import annotations

from engine.offsets import wire
from tests.helpers import wait_for
from tests.integration.kafka_io import (
    BASE_TIMESTAMP_MS,
    Record,
    end_offsets,
    mm2_properties,
    produce,
    read_all,
    stored_progress,
)

PARTITIONS = 3


def sample_records(count: int, first: int = 0) -> list[Record]:
    """Null keys, null values, empty, binary, null and repeated headers, explicit timestamps."""
    records = []
    for i in range(first, first + count):
        headers: list[tuple[str, bytes | None]] = [("trace", f"t{i}".encode())]
        if i % 3 == 0:
            headers.append(("empty", b""))
        if i % 4 == 0:
            headers.append(("binary", bytes([0, 255, i % 256, 10, 13])))
        if i % 6 == 0:
            headers.append(("null-value", None))
        if i % 10 == 0:
            headers.append(("trace", b"repeated-key"))
        records.append(Record(
            partition=i % PARTITIONS,
            key=None if i % 5 == 0 else f"key-{i}".encode(),
            value=None if i % 7 == 0 else (b"\x00\x01binary" if i % 11 == 0 else f"value-{i}".encode() * (i % 4 + 1)),
            headers=tuple(headers),
            timestamp=BASE_TIMESTAMP_MS + i,
        ))
    return records


def by_partition(records: list[Record]) -> dict[int, list[Record]]:
    grouped: dict[int, list[Record]] = {p: [] for p in range(PARTITIONS)}
    for r in records:
        grouped[r.partition].append(r)
    return grouped


def assert_same_records(expected: dict[int, list[Record]], actual: dict[int, list[Record]]) -> None:
    assert sorted(actual) == sorted(expected), "partition numbers differ"
    for partition, records in expected.items():
        copied = actual[partition]
        assert len(copied) == len(records), f"partition {partition}: {len(copied)} copied, {len(records)} expected"
        for index, (want, got) in enumerate(zip(records, copied, strict=True)):
            assert got == want, f"partition {partition} record {index}: {got} != {want}"


def test_copies_every_record_field_by_field_and_resumes_from_stored_progress(
    source_cluster, target_cluster, engine, unique_name
):
    topic = source_cluster.create_topic(unique_name("orders"), PARTITIONS)
    remote = f"A.{topic}"
    first = sample_records(10_000)
    produce(source_cluster.bootstrap_servers, topic, first)
    properties = mm2_properties(source_cluster, target_cluster, {"A->B.topics": topic})

    run = engine(properties)
    wait_for(lambda: sum(end_offsets(target_cluster.bootstrap_servers, remote).values()) >= len(first),
             60, f"{len(first)} records in {remote}", run.log)
    assert run.stop() == 0, run.log()

    assert_same_records(by_partition(first), read_all(target_cluster.bootstrap_servers, remote))
    # remote topic created with the source's partition count
    assert sorted(end_offsets(target_cluster.bootstrap_servers, remote)) == list(range(PARTITIONS))

    # progress lives in MM2's Connect offsets topic on the target, MM2's exact JSON bytes
    progress = stored_progress(target_cluster.bootstrap_servers, wire.connect_offsets_topic("A"))
    for partition, records in by_partition(first).items():
        key = f'["MirrorSourceConnector",{{"cluster":"A","partition":{partition},"topic":"{topic}"}}]'.encode()
        assert progress[key] == {"offset": len(records) - 1}, f"partition {partition}"

    # a second run resumes after the stored offsets: the new records only, no duplicates
    second = sample_records(600, first=len(first))
    produce(source_cluster.bootstrap_servers, topic, second)
    run = engine(properties)
    total = len(first) + len(second)
    wait_for(lambda: sum(end_offsets(target_cluster.bootstrap_servers, remote).values()) >= total,
             60, f"{total} records in {remote}", run.log)
    assert run.stop() == 0, run.log()
    assert_same_records(by_partition(first + second), read_all(target_cluster.bootstrap_servers, remote))


def test_topic_the_engine_cannot_create_is_an_error_naming_topic_and_key(
    source_cluster, target_cluster, engine, unique_name
):
    topic = source_cluster.create_topic(unique_name("orders"), 1)
    properties = mm2_properties(source_cluster, target_cluster,
                                {"A->B.topics": topic, "replication.factor": "3"})
    run = engine(properties)
    code = run.wait(60)
    log = run.log()
    assert code == 2, log
    assert f"cannot create topic 'A.{topic}' on cluster B" in log
    assert "config key: replication.factor" in log
    assert "replication factor 3" in log

