"""Latency at a steady offered load: half the ceiling's records/s (LATENCY_METHOD)."""

from __future__ import annotations

import statistics
import time
import uuid
from pathlib import Path
from typing import cast

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from engine.bench import payload, report
from engine.bench.ceiling import run_producer_performance
from engine.bench.clusters import Clusters, admin_client, end_offsets
from engine.bench.launch import wait_exit
from engine.bench.rows import start_replicator
from engine.bench.settings import COPIERS, BenchError, Settings
from engine.bench.window import FIRST_RECORD_TIMEOUT_S, POLL_S

LATENCY_METHOD = (
    "Per replicator, a fresh source topic and its remote copy `<source alias>.<topic>` are created first, the "
    "copy with message.timestamp.type=LogAppendTime (config sync is off, so no replicator resets it). Once one "
    "primer record per partition has been copied, Kafka's ProducerPerformance produces to the source at half "
    "the ceiling's measured records/s (or 25 %, 75 %: --latency-loads) for the set number of seconds "
    "(same producer settings and compression). "
    "Copies are matched to source records by partition and offset (the copy of a fresh topic keeps offsets); "
    "latency = the target broker's LogAppendTime of the copy minus the source record's CreateTime, both from "
    "this machine's clock. The primer records are left out.")


def read_timestamps(servers: str, topic: str, ends: dict[int, int], first_offset: int,
                    timeout_s: float = 120.0) -> dict[tuple[int, int], tuple[int, int]]:
    """(partition, offset) -> (timestamp type, timestamp) of every record from first_offset to the ends."""
    consumer = Consumer({"bootstrap.servers": servers, "group.id": f"mebench-reader-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "log_level": 3, "fetch.max.bytes": 52428800})
    found: dict[tuple[int, int], tuple[int, int]] = {}
    try:
        consumer.assign([TopicPartition(topic, p, first_offset) for p, end in ends.items() if end > first_offset])
        pending = {p for p, end in ends.items() if end > first_offset}
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise BenchError(f"reading {topic}: partitions {sorted(pending)} not read to the end")
            for m in consumer.consume(10_000, timeout=0.5):
                error = m.error()
                if error:
                    if error.code() != KafkaError._PARTITION_EOF:
                        raise BenchError(f"reading {topic}: {error}")
                    continue
                # a record, not an event: it has a partition and an offset
                partition, offset = cast(int, m.partition()), cast(int, m.offset())
                if offset < ends[partition]:
                    found[(partition, offset)] = m.timestamp()
                if offset + 1 >= ends[partition]:
                    pending.discard(partition)
        return found
    finally:
        consumer.close()


def latency_run(clusters: Clusters, replicator: str, record_size: int, compression: str, settings: Settings,
                rate: float, folder: Path, load_share: float = 0.5) -> dict:
    """Latency at a steady offered load (LATENCY_METHOD): p50/p99 of copy LogAppendTime - source CreateTime."""
    folder.mkdir(parents=True, exist_ok=True)
    topic = f"{clusters.prefix}lat-{replicator}-{record_size}-{uuid.uuid4().hex[:6]}"
    source_alias = clusters.new_source_alias()
    remote = clusters.remote_topic(topic, source_alias)
    partitions = settings.partitions
    records = max(1, int(rate * settings.latency_seconds))
    base = {"replicator": replicator, "record_size": record_size, "compression": compression,
            "offered_records_per_s": rate, "load_share": load_share, "records": records, "topic": topic}
    clusters.create_topic(clusters.source_servers, topic, partitions)
    # LogAppendTime on the copy: the broker stamps each record when it appends it
    clusters.create_topic(clusters.target_servers, remote, partitions, {"message.timestamp.type": "LogAppendTime"})
    admin = admin_client(clusters.target_servers)
    process = start_replicator(replicator, clusters, [topic], settings, compression, folder, source_alias)
    try:
        # one primer record per partition: the replicator is copying once all are on the target
        primer = Producer({"bootstrap.servers": clusters.source_servers, "log_level": 3})
        for p in range(partitions):
            primer.produce(topic, value=b"primer", partition=p)
        if primer.flush(30):
            raise BenchError(f"primer records to {topic} not acknowledged")
        deadline = time.monotonic() + FIRST_RECORD_TIMEOUT_S
        while sum((end_offsets(admin, remote, partitions) or {}).values()) < partitions:
            if not process.alive() or time.monotonic() > deadline:
                raise BenchError(f"{process.name} did not copy the primer records\n{process.log_tail()}")
            process.tree()
            time.sleep(POLL_S)
        payload_file = payload.write_payload_file(folder / f"payload-{record_size}.txt", record_size)
        producer = run_producer_performance(clusters.source_servers, topic, records, payload_file, compression,
                                            folder, throughput=rate, name="latency-producer")
        try:
            if wait_exit(producer, settings.latency_seconds * 4 + 120) != 0:
                raise BenchError(f"ProducerPerformance failed\n{producer.log_tail()}")
        finally:
            producer.stop(deadline_s=5)
        source_ends = end_offsets(admin_client(clusters.source_servers), topic, partitions)
        if source_ends is None:
            raise BenchError(f"no end offsets for {topic}")
        deadline = time.monotonic() + 120
        while True:
            target_ends = end_offsets(admin, remote, partitions) or {}
            if all(target_ends.get(p, 0) >= end for p, end in source_ends.items()):
                break
            if not process.alive() or time.monotonic() > deadline:
                raise BenchError(f"{process.name} did not copy every latency record\n{process.log_tail()}")
            process.tree()
            time.sleep(POLL_S)
    finally:
        process.stop()
    try:
        sources = read_timestamps(clusters.source_servers, topic, source_ends, 1)
        copies = read_timestamps(clusters.target_servers, remote, source_ends, 1)
        latencies, wrong_type, samples = [], 0, []
        for position, (_, created) in sources.items():
            copy = copies.get(position)
            if copy is None:
                continue
            kind, appended = copy
            if kind != 2:  # confluent_kafka.TIMESTAMP_LOG_APPEND_TIME
                wrong_type += 1
                continue
            latencies.append(float(appended - created))
            samples.append(f"{position[0]},{position[1]},{created},{appended}\n")
        # every sample, for finding where the latency goes (when the slow copies were made)
        (folder / "samples.csv").write_text("partition,offset,create_ms,append_ms\n" + "".join(samples))
        if wrong_type:
            raise BenchError(f"{wrong_type} copies on {remote} do not carry LogAppendTime; was its config reset?")
        if not latencies:
            raise BenchError(f"no latency samples from {remote}")
        return {**base, **report.latency_summary(latencies), "missing_copies": len(sources) - len(latencies),
                "target_records": sum(source_ends.values())}
    finally:
        clusters.delete_topics(clusters.source_servers, [topic])
        clusters.delete_topics(clusters.target_servers, [remote])


def latency_rate(runs: list[dict], record_size: int, compression: str, share: float = 0.5) -> tuple[float, str]:
    """`share` (half) of the ceiling's median records/s over plaintext; without a ceiling, of the
    fastest replicator's median."""
    def median_of(replicator: str | None) -> float | None:
        values = [r["records_per_s"] for r in runs if not r.get("warmup") and not r.get("error")
                  and r["record_size"] == record_size and r["compression"] == compression
                  and r.get("security", "plaintext") == "plaintext"
                  and (replicator is None or r["replicator"] == replicator) and r.get("records_per_s")]
        return statistics.median(values) if values else None

    part = "half" if share == 0.5 else f"{share:.0%} of"
    ceiling = median_of("ceiling")
    if ceiling:
        return ceiling * share, f"{part} the ceiling"
    fastest = max((v for v in (median_of(r) for r in COPIERS) if v), default=None)
    if fastest:
        return fastest * share, f"{part} the fastest replicator (no ceiling measured)"
    return 1000.0, "1000 records/s (nothing measured)"
