"""The batch relay's own CPU per GB on two running clusters (a script, about a minute):

    python benchmarks/bench_batch_relay.py SOURCE_BOOTSTRAP TARGET_BOOTSTRAP [MiB]

For 1 KiB and 100 B records, in 1 MiB and in 16 KiB source batches (the Java producer's default), it
fills a source topic of 4 partitions, then copies it twice with the relay in this process and reports
this process's CPU time (user + system) per GB of records bytes: once the core alone (BatchRelay: fetch,
rewrite, CRC, produce, acks) and once as the worker runs it (BatchLoop: plus the Bookkeeper's per-record
accounting of progress, offset syncs and the offset map). The brokers' CPU is not counted. Not
`make bench`'s figure, which counts the whole engine against the floor; a quick check of the relay.
"""

from __future__ import annotations

import os
import sys
import time
import uuid

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from engine.batch.brokers import Brokers
from engine.batch.relay import BatchRelay
from engine.worker.batch_loop import open_batch_loop

PARTITIONS = 4


def create(servers: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": servers})
    for future in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
        future.result(30)


def fill(servers: str, topic: str, record_size: int, total: int, batch_bytes: int) -> int:
    producer = Producer({"bootstrap.servers": servers, "linger.ms": 50, "batch.size": batch_bytes,
                         "enable.idempotence": True, "queue.buffering.max.kbytes": 262144})
    value, count = os.urandom(record_size), total // record_size
    for i in range(count):
        while True:
            try:
                producer.produce(topic, value=value, key=b"%08d" % i, partition=i % PARTITIONS)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(120)
    return count


def copy_core(source: str, target: str, topic: str, remote: str, count: int) -> float:
    relay = BatchRelay(Brokers(source), Brokers(target))
    relay.start()
    for p in range(PARTITIONS):
        relay.add_partition(topic, remote, p, 0)
    start = time.process_time()
    while sum(relay.committed.values()) < count:
        relay.pump(100)
    relay.flush(30)
    spent = time.process_time() - start
    relay.close()
    return spent


def copy_worker_loop(source: str, target: str, topic: str, remote: str, count: int) -> float:
    loop = open_batch_loop(source, target, "bench-consumer", "bench-producer")
    loop.bookkeeper.offset_lag_max = 100  # offset syncs on, as MM2's default
    for p in range(PARTITIONS):
        loop.add_partition(topic, remote, p, -1)
    loop.assign([(topic, p, -2) for p in range(PARTITIONS)])
    start = time.process_time()
    while loop.bookkeeper.records_acked < count:
        loop.pump(100)
        loop.bookkeeper.take_offset_syncs()
        loop.bookkeeper.take_offset_runs()
    loop.flush(30)
    spent = time.process_time() - start
    loop.close()
    return spent


def main(source: str, target: str, mib: int) -> None:
    print(f"{'records':>8} {'batches':>8} {'MiB':>5} {'core CPU-s/GB':>14} {'worker loop CPU-s/GB':>21}")
    for record_size in (1024, 100):
        for batch_bytes in (1 << 20, 16 << 10):
            topic = f"bench-batch-{record_size}-{batch_bytes}-{uuid.uuid4().hex[:6]}"
            create(source, topic)
            count = fill(source, topic, record_size, mib << 20, batch_bytes)
            gb = count * record_size / 1e9
            results = []
            for copy in (copy_core, copy_worker_loop):
                remote = f"{topic}-{copy.__name__}"
                create(target, remote)
                results.append(copy(source, target, topic, remote, count) / gb)
            print(f"{record_size:>7}B {batch_bytes >> 10:>6}Ki {mib:>5} {results[0]:14.2f} {results[1]:21.2f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 64)
