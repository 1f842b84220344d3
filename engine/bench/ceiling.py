"""The ceiling: what the brokers and Kafka's own Java clients do without a replicator in between.

Kafka's ConsumerPerformance reads the source topic while ProducerPerformance writes the same number
of records of the same value size to a target topic, at the same time, with the producer settings
MM2 gets (acks=all, batching, compression). A replicator can copy no faster than the slower of the
two, so the ceiling is min(consumer records/s, producer records/s). The producer's rate is its steady
state after the first fifth of the records (`--warmup-records`); the consumer's is ConsumerPerformance's
fetch rate (without the group join).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from engine.bench.launch import java_command, launch, wait_exit
from engine.sandbox.distribution import log4j2_file_config
from engine.bench.mm2 import CONSUMER_TUNING, PRODUCER_TUNING
from engine.sandbox.distribution import kafka_libs

TOOL_JVM_OPTIONS = ("-Xms256m", "-Xmx1g", "-XX:+UseG1GC", "-Djava.awt.headless=true")


@dataclass(frozen=True)
class ProducerResult:
    records: int
    records_per_s: float
    mb_per_s: float  # the tool's MB: 2^20 bytes of values
    latency_avg_ms: float
    latency_p50_ms: float
    latency_p99_ms: float


def parse_producer_performance(output: str) -> ProducerResult:
    """ProducerPerformance's steady-state summary line (after --warmup-records), else its summary line."""
    pattern = re.compile(
        r"(\d+) (?:steady state )?records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
        r"[\d.]+ ms max latency, (\d+) ms 50th, \d+ ms 95th, (\d+) ms 99th")
    matches = pattern.findall(output)
    if not matches:
        raise ValueError("no ProducerPerformance summary line in its output:\n" + output[-2000:])
    records, rate, mb, avg, p50, p99 = matches[-1]
    return ProducerResult(int(records), float(rate), float(mb), float(avg), float(p50), float(p99))


def parse_consumer_performance(output: str) -> dict[str, float]:
    """ConsumerPerformance's header and value lines as a dict (numbers only)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if line.startswith("start.time") and i + 1 < len(lines):
            names = [n.strip() for n in line.split(",")]
            values = [v.strip() for v in lines[i + 1].split(",")]
            result = {}
            for name, value in zip(names, values):
                try:
                    result[name] = float(value)
                except ValueError:
                    continue
            return result
    raise ValueError("no ConsumerPerformance result in its output:\n" + output[-2000:])


def producer_properties(compression: str) -> list[str]:
    return [f"{k}={v}" for k, v in {**PRODUCER_TUNING, "compression.type": compression}.items()]


def run_producer_performance(servers: str, topic: str, records: int, payload_file: Path, compression: str,
                             folder: Path, throughput: float = -1, name: str = "producer-perf",
                             warmup_records: int = 0):
    """Starts ProducerPerformance; returns the Launched process (its console is its output file)."""
    log_config = folder / "tools-log4j2.properties"
    log_config.write_text(log4j2_file_config(folder / "tools.log", level="WARN"))
    args = ["--bootstrap-server", servers, "--topic", topic, "--num-records", str(records),
            "--throughput", str(int(throughput)), "--payload-file", str(payload_file),
            *(["--warmup-records", str(warmup_records)] if warmup_records else []),
            "--command-property", *producer_properties(compression)]
    command = java_command(kafka_libs(), "org.apache.kafka.tools.ProducerPerformance", args, log_config,
                           TOOL_JVM_OPTIONS)
    return launch(name, command, folder / f"{name}.out")


def run_ceiling(source_servers: str, target_servers: str, source_topic: str, target_topic: str, records: int,
                payload_file: Path, compression: str, folder: Path, timeout_s: float = 600.0) -> dict:
    """One ceiling run: both tools at once; returns their rates and the ceiling."""
    folder.mkdir(parents=True, exist_ok=True)
    log_config = folder / "tools-log4j2.properties"
    log_config.write_text(log4j2_file_config(folder / "tools.log", level="WARN"))
    consumer_args = ["--bootstrap-server", source_servers, "--topic", source_topic,
                     "--num-records", str(records), "--timeout", "60000",
                     "--command-property", *[f"{k}={v}" for k, v in CONSUMER_TUNING.items()]]
    consumer = launch("consumer-perf", java_command(
        kafka_libs(), "org.apache.kafka.tools.ConsumerPerformance", consumer_args, log_config, TOOL_JVM_OPTIONS),
        folder / "consumer-perf.out")
    try:
        # the JVM's first records run through cold code; the steady state after them is the ceiling
        producer = run_producer_performance(target_servers, target_topic, records, payload_file, compression,
                                            folder, warmup_records=records // 5)
        try:
            producer_code = wait_exit(producer, timeout_s)
        finally:
            producer.stop(deadline_s=5)
        consumer_code = wait_exit(consumer, timeout_s)
    finally:
        consumer.stop(deadline_s=5)
    if producer_code != 0 or consumer_code != 0:
        raise RuntimeError(f"ceiling tools failed (producer {producer_code}, consumer {consumer_code})\n"
                           f"{producer.log_tail()}\n{consumer.log_tail()}")
    produced = parse_producer_performance(producer.log_file.read_text(errors="replace"))
    consumed = parse_consumer_performance(consumer.log_file.read_text(errors="replace"))
    # fetch.nMsg.sec leaves out the group join; nMsg.sec would count it as copy time
    consumer_rate = consumed.get("fetch.nMsg.sec") or consumed["nMsg.sec"]
    return {
        "consumer_records_per_s": consumer_rate,
        "producer_records_per_s": produced.records_per_s,
        "records_per_s": min(consumer_rate, produced.records_per_s),
        "producer_latency_p99_ms": produced.latency_p99_ms,
    }
