"""`mirror-engine demo`: two local clusters, sample data, replicate A->B, report per topic."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from engine.child_process import python_module
from engine.sandbox import KafkaCluster, kafka_libs
from engine.sandbox.distribution import cache_root

# topic -> partitions; every one matches the demo flow's `topics = orders.*`
DEMO_TOPICS = {"orders": 3, "orders.returns": 2}
COPY_TIMEOUT_S = 180.0


def _say(text: str) -> None:
    print(text, flush=True)


def _load_sample_data(servers: str, records_per_topic: int) -> dict[str, int]:
    # log_level 3: the broker's "coordinator load in progress" right after start-up is not news
    producer = Producer({"bootstrap.servers": servers, "linger.ms": 20, "enable.idempotence": True,
                         "compression.type": "lz4", "log_level": 3})
    for topic, partitions in DEMO_TOPICS.items():
        for i in range(records_per_topic):
            record = (f'{{"order":{i},"sku":"sku-{i % 977}","qty":{i % 9 + 1},'
                      f'"note":"{"x" * (i % 64)}"}}').encode()
            while True:
                try:
                    producer.produce(topic, value=record, key=f"customer-{i % 5003}".encode(),
                                     partition=i % partitions,
                                     headers=[("source", b"demo"), ("seq", i.to_bytes(8, "big"))])
                    break
                except BufferError:
                    producer.poll(0.1)
    unacknowledged = producer.flush(60)
    del producer  # its connections must not outlive the demo clusters
    if unacknowledged:
        raise RuntimeError("sample data was not acknowledged by cluster A")
    return {topic: records_per_topic for topic in DEMO_TOPICS}


def _record_counts(consumer: Consumer, topics: list[str]) -> dict[str, int]:
    counts = {}
    for topic in topics:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            counts[topic] = 0
            continue
        total = 0
        for p in metadata.partitions:
            try:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            except KafkaException:
                continue  # a just-created partition may have no leader yet; count it next round
            total += high - low
        counts[topic] = total
    return counts


def run_demo(records_per_topic: int = 200_000) -> int:
    interactive = sys.stdout.isatty() and os.environ.get("CI") != "true"
    folder = cache_root() / "demo"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    _say("mirror-engine demo: fetching Apache Kafka (cached after the first run) ...")
    kafka_libs()
    clusters: list[KafkaCluster] = []
    engine: subprocess.Popen | None = None
    try:
        for name in ("A", "B"):
            _say(f"starting local KRaft cluster {name} ...")
            clusters.append(KafkaCluster(name, nodes=1, base_dir=folder / "sandbox").start())
        source, target = clusters
        _say(f"  A at {source.bootstrap_servers}, B at {target.bootstrap_servers}")

        admin = AdminClient({"bootstrap.servers": source.bootstrap_servers})
        futures = admin.create_topics([NewTopic(t, p, 1) for t, p in DEMO_TOPICS.items()])
        for future in futures.values():
            future.result(timeout=30)
        del admin, futures
        _say(f"loading {records_per_topic:,} records into each of {', '.join(DEMO_TOPICS)} on A ...")
        produced = _load_sample_data(source.bootstrap_servers, records_per_topic)

        config = folder / "mm2.properties"
        config.write_text(
            "clusters = A, B\n"
            f"A.bootstrap.servers = {source.bootstrap_servers}\n"
            f"B.bootstrap.servers = {target.bootstrap_servers}\n"
            "A->B.enabled = true\n"
            "A->B.topics = orders.*\n"
            "# one-node demo clusters: MM2's defaults (2 and 3) need more brokers\n"
            "replication.factor = 1\n"
            "offset.storage.replication.factor = 1\n"
            "heartbeats.topic.replication.factor = 1\n"
            "offset-syncs.topic.replication.factor = 1\n"
            "checkpoints.topic.replication.factor = 1\n"
            "# any free port; the engine log names it\n"
            "mirror.engine.metrics.listen = 127.0.0.1:0\n"
        )
        log_path = folder / "engine.log"
        _say(f"replicating A->B with `mirror-engine run {config.name}` (engine log: {log_path})")
        with open(log_path, "ab") as log:
            argv, env = python_module("engine", "run", str(config))
            engine = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        remote = {topic: f"A.{topic}" for topic in DEMO_TOPICS}
        total = sum(produced.values())
        probe = Consumer({"bootstrap.servers": target.bootstrap_servers,
                          "group.id": f"demo-probe-{uuid.uuid4().hex}", "log_level": 3})
        started = time.monotonic()
        copied: dict[str, int] = {}
        last_line = 0.0
        while True:
            copied = _record_counts(probe, list(remote.values()))
            done = sum(copied.values())
            elapsed = time.monotonic() - started
            if interactive or elapsed - last_line >= 2 or done >= total:
                line = (f"  copied {done:,} / {total:,} records ({100 * done / total:.0f}%), "
                        f"{done / max(elapsed, 1e-3):,.0f} records/s, {elapsed:.1f}s")
                print(("\r" + line) if interactive else line, end="" if interactive else "\n", flush=True)
                last_line = elapsed
            if done >= total:
                break
            if engine.poll() is not None:
                raise RuntimeError(f"the engine exited with code {engine.returncode}; see {log_path}")
            if elapsed > COPY_TIMEOUT_S:
                raise RuntimeError(f"not everything was copied within {COPY_TIMEOUT_S:.0f}s; see {log_path}")
            time.sleep(0.5)
        if interactive:
            print()
        probe.close()
        del probe

        engine.send_signal(signal.SIGTERM)
        code = engine.wait(timeout=120)
        _say(f"engine stopped (exit code {code})")
        _say("")
        _say(f"{'topic on A':<18} {'topic on B':<20} {'produced':>10} {'copied':>10}  verdict")
        ok = code == 0
        for topic, remote_topic in remote.items():
            same = copied[remote_topic] == produced[topic]
            ok &= same
            _say(f"{topic:<18} {remote_topic:<20} {produced[topic]:>10,} {copied[remote_topic]:>10,}  "
                 f"{'copied = produced' if same else 'MISMATCH'}")
        _say("")
        from engine.audit.comparison import report
        from engine.audit.flow import audit_flow
        from engine.config.loading import load

        loaded = load(config)
        results = audit_flow(loaded, loaded.flows[0], topics=list(DEMO_TOPICS))
        _say(report(results))
        ok &= all(r.ok for r in results)
        _say("")
        _say("demo result: " + ("OK" if ok else "FAILED"))
        return 0 if ok else 1
    finally:
        if engine is not None and engine.poll() is None:
            engine.kill()
            engine.wait(timeout=30)
        for cluster in clusters:
            cluster.stop()
        _say("local clusters stopped and removed")
