"""mm2.properties for a benchmark flow, and Java MirrorMaker 2 4.3.1 in dedicated mode.

MM2 and mirror-engine read the same keys, so every row gets the same flow and internal-topic
settings; the client settings differ by row (bench_properties' `tuning`): MM2 runs twice, at its
defaults and with published tuning guidance (MM2_TUNED, each setting with its source), the engine
with the harness's tuning. Where MM2 takes a key from (MirrorMakerConfig
4.3.1): `<target>.producer.*` becomes the Connect worker's producer (the one that writes the copies),
`<source>.consumer.*` the MirrorSourceTask's consumer; `tasks.max` and the `sync.*`/`emit.*` keys are
connector settings read at the top level.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple

from engine.bench.launch import Launched, java_command, launch
from engine.sandbox.distribution import MIRROR_MAKER_ARTIFACTS, kafka_libs, log4j2_file_config

MM2_MAIN = "org.apache.kafka.connect.mirror.MirrorMaker"

# The harness's client tuning: the engine's rows and the Kafka perf tools (ceiling, latency load) run
# with it, as every row did before MM2 ran twice. Bigger batches, a short linger so batches fill, room
# for several full batches per partition; acks=all as Connect's default.
PRODUCER_TUNING: dict[str, str] = {
    "acks": "all",
    "batch.size": "262144",
    "linger.ms": "20",
    "buffer.memory": "67108864",
}
# large fetches, many records per poll, a short wait when the log is idle
CONSUMER_TUNING: dict[str, str] = {
    "fetch.min.bytes": "65536",
    "fetch.max.wait.ms": "100",
    "max.partition.fetch.bytes": "4194304",
    "fetch.max.bytes": "52428800",
    "max.poll.records": "4000",
}


class Tuned(NamedTuple):
    """One setting of `mm2-tuned`: where it goes in mm2.properties, and who recommends it."""

    role: str  # "producer" (the target's producer), "consumer" (the source consumer) or "worker"
    key: str
    value: str
    sources: tuple[str, ...]
    note: str = ""


RED_HAT_MM2_HIGH_VOLUME = (
    "Red Hat Streams for Apache Kafka (Strimzi), \"Handling high volumes of messages\" and its example "
    "\"Configuring MirrorMaker 2 for high-volume messages\" (cluster-2.producer.batch.size=327680, "
    "cluster-2.producer.linger.ms=100, cluster-1.consumer.fetch.max.bytes=52428800, "
    "cluster-1.consumer.max.partition.fetch.bytes=1048576, cluster-1.consumer.max.poll.records=500; on "
    "OpenShift also offset.flush.timeout.ms=10000): https://docs.redhat.com/en/documentation/"
    "red_hat_streams_for_apache_kafka/2.8/html/kafka_configuration_tuning/con-high-volume-config-properties-str, "
    "example as found (localised copy): https://docs.redhat.com/zh-cn/documentation/"
    "red_hat_streams_for_apache_kafka/2.4/html/using_amq_streams_on_rhel/"
    "configuring_mirrormaker_2_for_high_volume_messages")
RED_HAT_CONSUMER_THROUGHPUT = (
    "Red Hat Streams for Apache Kafka, Kafka configuration tuning, \"Optimizing consumers for throughput and "
    "latency\" (fetch.max.wait.ms=500, fetch.min.bytes=16384 as the example of size-based fetch batching), "
    "as found (localised copy): https://docs.redhat.com/zh-cn/documentation/red_hat_streams_for_apache_kafka/"
    "2.5/html/kafka_configuration_tuning/con-consumer-config-properties-throughput-str")
CONFLUENT_PRODUCER_THROUGHPUT = (
    "Confluent, \"How to optimize a Kafka producer for throughput\" (batch.size 100000-200000, linger.ms "
    "10-100, compression.type=lz4, acks=1): https://developer.confluent.io/tutorials/optimize-producer-throughput/"
    "confluent.html")

# MM2 at its best by published guidance. Not taken: acks=1 (Confluent's producer tutorial), since a
# replicator that may lose acknowledged copies is not comparable (the engine always uses acks=all, as
# Connect's source tasks do); compression.type, which every row gets from the benchmark's case.
MM2_TUNED: tuple[Tuned, ...] = (
    Tuned("producer", "batch.size", "327680", (RED_HAT_MM2_HIGH_VOLUME, CONFLUENT_PRODUCER_THROUGHPUT)),
    Tuned("producer", "linger.ms", "100", (RED_HAT_MM2_HIGH_VOLUME, CONFLUENT_PRODUCER_THROUGHPUT)),
    Tuned("consumer", "fetch.max.bytes", "52428800", (RED_HAT_MM2_HIGH_VOLUME,), "the Java default"),
    Tuned("consumer", "max.partition.fetch.bytes", "1048576", (RED_HAT_MM2_HIGH_VOLUME,), "the Java default"),
    Tuned("consumer", "max.poll.records", "500", (RED_HAT_MM2_HIGH_VOLUME,), "the Java default"),
    Tuned("consumer", "fetch.min.bytes", "16384", (RED_HAT_CONSUMER_THROUGHPUT,)),
    Tuned("consumer", "fetch.max.wait.ms", "500", (RED_HAT_CONSUMER_THROUGHPUT,), "the Java default"),
    Tuned("worker", "offset.flush.timeout.ms", "10000", (RED_HAT_MM2_HIGH_VOLUME,)),
)
# the two MM2 rows and the file each gets; "harness" is the engine's
MM2_VARIANTS = ("mm2-defaults", "mm2-tuned")
TUNINGS = ("defaults", "tuned", "harness")

# `kafka-run-class.sh`'s defaults and `connect-mirror-maker.sh`'s heap: what a stock MM2 runs with
MM2_JVM_OPTIONS = ("-Xms256M", "-Xmx2G", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
                   "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
                   "-Djava.awt.headless=true")


def exact_topic_regex(topic: str) -> str:
    """A `topics` entry that matches this one topic only (MM2 and the engine full-match regexes)."""
    return re.escape(topic)


def bench_properties(source: str, target: str, source_servers: str, target_servers: str, topics: list[str],
                     tasks_max: int, compression: str, heartbeats: bool = True,
                     tuning: str = "harness") -> dict[str, str]:
    """The mm2.properties keys of one benchmark run.

    Every row gets the same flow, topics, tasks.max, replication factors, compression and the same
    measurement scope (no config, ACL or group offset sync, no checkpoints: only the copy is
    measured); client settings by `tuning`: "defaults" none (mm2-defaults), "tuned" MM2_TUNED
    (mm2-tuned), "harness" PRODUCER_TUNING and CONSUMER_TUNING (the engine's rows)."""
    if tuning not in TUNINGS:
        raise ValueError(f"tuning must be one of {TUNINGS}, got {tuning!r}")
    props = {
        "clusters": f"{source}, {target}",
        f"{source}.bootstrap.servers": source_servers,
        f"{target}.bootstrap.servers": target_servers,
        f"{source}->{target}.enabled": "true",
        f"{source}->{target}.topics": ", ".join(exact_topic_regex(t) for t in topics),
        f"{target}->{source}.enabled": "false",
        # MM2 runs a herder for the reverse pair too unless its heartbeats are off
        f"{target}->{source}.emit.heartbeats.enabled": "false",
        "emit.heartbeats.enabled": str(heartbeats).lower(),
        "tasks.max": str(tasks_max),
        # one-node benchmark clusters: every topic either replicator creates has one replica
        "replication.factor": "1",
        "offset.storage.replication.factor": "1",
        "config.storage.replication.factor": "1",
        "status.storage.replication.factor": "1",
        "heartbeats.topic.replication.factor": "1",
        "checkpoints.topic.replication.factor": "1",
        "offset-syncs.topic.replication.factor": "1",
        # only the copy is measured: no config or ACL sync (it would also reset the latency phase's
        # LogAppendTime target topics), no checkpoints, no group offset sync
        "sync.topic.configs.enabled": "false",
        "sync.topic.acls.enabled": "false",
        "emit.checkpoints.enabled": "false",
        "sync.group.offsets.enabled": "false",
        "refresh.topics.interval.seconds": "5",
    }
    producer: dict[str, str] = {"compression.type": compression} if compression != "none" else {}
    consumer: dict[str, str] = {}
    if tuning == "harness":
        producer = {**PRODUCER_TUNING, **producer}
        consumer = dict(CONSUMER_TUNING)
    elif tuning == "tuned":
        producer = {**{t.key: t.value for t in MM2_TUNED if t.role == "producer"}, **producer}
        consumer = {t.key: t.value for t in MM2_TUNED if t.role == "consumer"}
        props.update({t.key: t.value for t in MM2_TUNED if t.role == "worker"})
    for key, value in producer.items():
        props[f"{target}.producer.{key}"] = value
        props[f"producer.{key}"] = value
    for key, value in consumer.items():
        props[f"{source}.consumer.{key}"] = value
        props[f"consumer.{key}"] = value
    return props


def render(props: dict[str, str]) -> str:
    """Java .properties text; values here never need escaping beyond the regex backslashes."""
    return "".join(f"{key} = {value.replace(chr(92), chr(92) * 2)}\n" for key, value in props.items())


def mirror_maker_libs() -> Path:
    """connect-mirror 4.3.1 and its dependencies, fetched with Maven once."""
    return kafka_libs(MIRROR_MAKER_ARTIFACTS, "mirror-maker")


def start_mm2(config: Path, target: str, folder: Path) -> Launched:
    """`java -cp <jars> org.apache.kafka.connect.mirror.MirrorMaker mm2.properties --clusters <target>`."""
    log_config = folder / "mm2-log4j2.properties"
    log_config.write_text(log4j2_file_config(folder / "mm2.log"))
    command = java_command(mirror_maker_libs(), MM2_MAIN, [str(config), "--clusters", target], log_config,
                           MM2_JVM_OPTIONS)
    return launch("mm2", command, folder / "mm2.console")


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))
