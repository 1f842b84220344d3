"""mm2.properties for a benchmark flow, and Java MirrorMaker 2 4.3.1 in dedicated mode.

One file serves both replicators: MM2 and mirror-engine read the same keys, so both get the same
flow, the same internal-topic settings and the same client tuning (mirror-engine ignores the client
keys it does not know yet; the report says which). Where MM2 takes a key from (MirrorMakerConfig
4.3.1): `<target>.producer.*` becomes the Connect worker's producer (the one that writes the copies),
`<source>.consumer.*` the MirrorSourceTask's consumer; `tasks.max` and the `sync.*`/`emit.*` keys are
connector settings read at the top level.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from engine.bench.launch import Launched, java_command, launch
from engine.sandbox.distribution import log4j2_file_config
from engine.sandbox.distribution import MIRROR_MAKER_ARTIFACTS, kafka_libs

MM2_MAIN = "org.apache.kafka.connect.mirror.MirrorMaker"

# Throughput settings for MM2's producer, from the usual MM2/Connect tuning advice: bigger batches,
# a short linger so batches fill, room for several full batches per partition. acks=all as Connect's
# default (and as the ceiling's producer). The ceiling's ProducerPerformance uses the same values.
PRODUCER_TUNING: dict[str, str] = {
    "acks": "all",
    "batch.size": "262144",
    "linger.ms": "20",
    "buffer.memory": "67108864",
}
# MirrorSourceTask's consumer: large fetches, many records per poll, a short wait when the log is idle
CONSUMER_TUNING: dict[str, str] = {
    "fetch.min.bytes": "65536",
    "fetch.max.wait.ms": "100",
    "max.partition.fetch.bytes": "4194304",
    "fetch.max.bytes": "52428800",
    "max.poll.records": "4000",
}
# `kafka-run-class.sh`'s defaults and `connect-mirror-maker.sh`'s heap: what a stock MM2 runs with
MM2_JVM_OPTIONS = ("-Xms256M", "-Xmx2G", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
                   "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
                   "-Djava.awt.headless=true")


def exact_topic_regex(topic: str) -> str:
    """A `topics` entry that matches this one topic only (MM2 and the engine full-match regexes)."""
    return re.escape(topic)


def bench_properties(source: str, target: str, source_servers: str, target_servers: str, topics: list[str],
                     tasks_max: int, compression: str, heartbeats: bool = True) -> dict[str, str]:
    """The mm2.properties keys of one benchmark run, shared by MM2 and mirror-engine."""
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
    for key, value in {**PRODUCER_TUNING, "compression.type": compression}.items():
        props[f"{target}.producer.{key}"] = value
        props[f"producer.{key}"] = value
    for key, value in CONSUMER_TUNING.items():
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
