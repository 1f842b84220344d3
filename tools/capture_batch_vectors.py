"""Writes tests/data/batch_vectors.json: records sections fetched from a real Kafka 4.3.1 broker.

Run once against a sandbox cluster (`mirror-engine sandbox up --clusters A`):
`python tools/capture_batch_vectors.py 127.0.0.1:PORT`. Per case, a few records produced by librdkafka,
then the raw records section of one Fetch from offset 0, in hex, with the records as produced.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from engine.batch import protocol
from engine.batch.connection import BrokerConnection
from engine.batch.records import read_batches

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "batch_vectors.json"
TIMESTAMP_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z: fixed, the vectors are bytes
RECORDS = [  # key, value, headers
    (b"k0", b"v0", [("h", b"x"), ("null-value", None)]),
    (None, None, []),
    (b"k2", b"value-2" * 4, [("empty", b"")]),
]


def produce(servers: str, topic: str, settings: dict, transactional: bool = False) -> None:
    producer = Producer({"bootstrap.servers": servers, "linger.ms": 50, **settings})
    if transactional:
        producer.init_transactions(30)
        producer.begin_transaction()
    for i, (key, value, headers) in enumerate(RECORDS):
        producer.produce(topic, key=key, value=value, headers=headers, partition=0, timestamp=TIMESTAMP_MS + i)
    if transactional:
        producer.commit_transaction(30)
    assert producer.flush(30) == 0


def fetch(servers: str, topic: str, end_offset: int) -> str:
    """The batches up to `end_offset`, concatenated as one Fetch response would hold them."""
    host, port = servers.split(",")[0].rsplit(":", 1)
    connection = BrokerConnection(host, int(port))
    section, offset, deadline = b"", 0, time.monotonic() + 20
    while offset < end_offset and time.monotonic() < deadline:
        _, [part] = protocol.read_fetch(connection.call(protocol.API_FETCH, protocol.fetch_request(
            [(topic, 0, offset, 1 << 20)], max_wait_ms=500, min_bytes=1, max_bytes=1 << 20)))
        batches, _ = read_batches(part.records or b"", offset)
        if batches:
            section += bytes(part.records[:batches[-1].position + batches[-1].size])
            offset = batches[-1].next_offset
    if offset < end_offset:
        raise SystemExit(f"{topic}: fetched up to offset {offset}, not {end_offset}")
    return section.hex()


def _hex(value: bytes | None) -> str | None:
    return None if value is None else value.hex()


def main(servers: str) -> None:
    admin = AdminClient({"bootstrap.servers": servers})
    cases = {f"codec-{codec}": ({"compression.type": codec, "enable.idempotence": True}, {}, False)
             for codec in ("none", "gzip", "snappy", "lz4", "zstd")}
    cases["not-idempotent"] = ({"enable.idempotence": False, "acks": "1"}, {}, False)
    cases["log-append-time"] = ({"enable.idempotence": True}, {"message.timestamp.type": "LogAppendTime"}, False)
    cases["transactional"] = ({"transactional.id": "capture-" + uuid.uuid4().hex}, {}, True)
    vectors = {}
    for name, (settings, topic_config, transactional) in cases.items():
        topic = f"vectors-{name}-{uuid.uuid4().hex[:6]}"
        for future in admin.create_topics([NewTopic(topic, 1, 1, config=topic_config)]).values():
            future.result(30)
        produce(servers, topic, settings, transactional)
        vectors[name] = fetch(servers, topic, len(RECORDS) + transactional)  # + the commit marker
    OUT.write_text(json.dumps({
        "broker": "Apache Kafka 4.3.1, one KRaft node; producer librdkafka (confluent-kafka 2.16.1)",
        "timestamp_ms": TIMESTAMP_MS,
        "records": [[_hex(k), _hex(v), [[hk, _hex(hv)] for hk, hv in h]] for k, v, h in RECORDS],
        "sections": vectors,
    }, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
