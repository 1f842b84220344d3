"""Record filters: exact counts per partition, the records themselves, progress past filtered gaps."""

from __future__ import annotations

import pytest

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
COUNT = 1200


def sample() -> list[Record]:
    out = []
    for i in range(COUNT):
        headers = []
        if i % 2 == 0:
            headers.append(("trace", f"t{i}".encode()))
        if i % 3 == 0:
            headers.append(("region", b"eu" if i % 9 == 0 else b"us"))
        key = None if i % 10 == 0 else (b"eu-" if i % 4 == 0 else b"us-") + str(i).encode()
        out.append(Record(i % PARTITIONS, key, f"value-{i}".encode(), tuple(headers), BASE_TIMESTAMP_MS + i))
    return out


def has(record: Record, name: str) -> bool:
    return any(h[0] == name for h in record.headers)


CASES = {
    "header-present": ({"A->B.record.filter.header.present": "trace"}, lambda r: has(r, "trace")),
    "header-equals": ({"A->B.record.filter.header.equals": "region=eu"}, lambda r: (("region", b"eu") in r.headers)),
    "key-prefix": ({"A->B.record.filter.key.prefix": "eu-"}, lambda r: r.key is not None and r.key.startswith(b"eu-")),
    "partitions": ({"A->B.record.filter.partitions": "0, 2"}, lambda r: r.partition in (0, 2)),
    "python": ({"A->B.record.filter.python": "tests.integration.record_filter_fixture:only_even_values"},
               lambda r: int(r.value.split(b"-")[-1]) % 2 == 0),
    # MM2 files: Connect's Filter SMT with HasHeaderKey drops records that carry the header
    "connect-filter": ({
        "transforms": "dropTraced",
        "transforms.dropTraced.type": "org.apache.kafka.connect.transforms.Filter",
        "transforms.dropTraced.predicate": "isTraced",
        "predicates": "isTraced",
        "predicates.isTraced.type": "org.apache.kafka.connect.transforms.predicates.HasHeaderKey",
        "predicates.isTraced.name": "trace",
    }, lambda r: not has(r, "trace")),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_filter_copies_exactly_the_matching_records(case, source_cluster, target_cluster, engine, unique_name):
    settings, keep = CASES[case]
    topic = source_cluster.create_topic(unique_name(case), PARTITIONS)
    records = sample()
    produce(source_cluster.bootstrap_servers, topic, records)
    expected = {p: [r for r in records if r.partition == p and keep(r)] for p in range(PARTITIONS)}
    assert 0 < sum(map(len, expected.values())) < COUNT  # the filter keeps some and drops some

    run = engine(mm2_properties(source_cluster, target_cluster, {"A->B.topics": topic, **settings}))
    remote = f"A.{topic}"
    replicated = [p for p in range(PARTITIONS) if case != "partitions" or p in (0, 2)]
    keys = {p: wire.source_offset_key("A", topic, p) for p in replicated}
    # progress passes the filtered gaps up to each partition's last offset, even a filtered one
    wait_for(lambda: all(stored_progress(target_cluster.bootstrap_servers, "mm2-offsets.A.internal").get(keys[p])
                         == {"offset": COUNT // PARTITIONS - 1} for p in replicated), 60,
             "progress at the end of every replicated partition", run.log)
    assert run.stop() == 0, run.log()
    copied = read_all(target_cluster.bootstrap_servers, remote)
    assert {p: len(rs) for p, rs in copied.items()} == {p: len(rs) for p, rs in expected.items()}
    assert copied == expected
    assert sum(end_offsets(target_cluster.bootstrap_servers, remote).values()) == sum(map(len, expected.values()))


def test_an_unsupported_connect_transform_is_refused_naming_the_key(source_cluster, target_cluster, engine,
                                                                  unique_name):
    topic = source_cluster.create_topic(unique_name("smt"), 1)
    run = engine(mm2_properties(source_cluster, target_cluster, {
        "A->B.topics": topic, "transforms": "route",
        "transforms.route.type": "org.apache.kafka.connect.transforms.RegexRouter",
    }))
    assert run.wait(60) == 2, run.log()
    assert "transforms.route.type: transform 'org.apache.kafka.connect.transforms.RegexRouter' is not supported" \
        in run.log()
