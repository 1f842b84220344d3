"""The ceiling: how many records per second the target cluster takes, measured by saturating it.

Several producer processes write the case's records (same record size, compression and producer
settings as the replicators' writes, acks=all) to a fresh target topic at once, in two flavours
run one after the other: librdkafka (the Cython load generator of engine/bench/_floor.pyx, with the
engine's producer settings) and Kafka's Java ProducerPerformance (with the harness's producer
tuning). Each flavour's rate is read like a replicator's, from the target's end offsets over the
steady window (10 % to 90 % of the records); the ceiling is the better flavour. Over that window the
harness also records the load generators' cores, the target broker's cores and how busy the machine
was, so the report can say what limited the ceiling: on two shared cores the generators compete
with the brokers, and a replicator can then beat the "ceiling".
"""

from __future__ import annotations

from pathlib import Path

from engine.bench.launch import java_command, launch
from engine.bench.mm2 import PRODUCER_TUNING, render
from engine.sandbox.distribution import kafka_libs, log4j2_file_config

TOOL_JVM_OPTIONS = ("-Xms256m", "-Xmx1g", "-XX:+UseG1GC", "-Djava.awt.headless=true")
FLAVOURS = ("librdkafka", "java")
# the machine counts as CPU-bound during a window this busy
CPU_BOUND_SHARE = 0.9


def load_processes(cpus: int) -> int:
    """How many producer processes saturate the target: one more than the CPUs, at least 3."""
    return max(3, cpus + 1)


def split(records: int, processes: int) -> list[tuple[int, int]]:
    """(first index, records) of each process: the records shared out, the remainder to the first."""
    share, extra = divmod(records, processes)
    parts, first = [], 0
    for i in range(processes):
        count = share + (1 if i < extra else 0)
        parts.append((first, count))
        first += count
    return [p for p in parts if p[1] > 0]


def limit_text(flavour: str, processes: int, machine_busy: float | None, generator_cores: float | None,
               broker_cores: float | None, cpus: int) -> str:
    """What held the ceiling's best run, from its window's CPU figures."""
    what = f"{processes} {'librdkafka load generators' if flavour == 'librdkafka' else 'ProducerPerformance JVMs'}"
    if machine_busy is None:
        return f"{what}; the machine's CPU was not measured"
    parts = [f"the machine was {machine_busy:.0%} busy"]
    if generator_cores is not None:
        parts.append(f"the generators used {generator_cores:.2f} cores")
    if broker_cores is not None:
        parts.append(f"the target broker {broker_cores:.2f}")
    verdict = (f"CPU-bound: the load generators competed with the brokers for the {cpus} cores, so the "
               "target's real limit is higher" if machine_busy >= CPU_BOUND_SHARE else
               "not CPU-bound: the target broker's request handling and the generators' in-flight limits held it")
    return f"{what}; {', '.join(parts)}: {verdict}"


def producer_properties(compression: str) -> list[str]:
    return [f"{k}={v}" for k, v in {**PRODUCER_TUNING, "compression.type": compression}.items()]


def run_producer_performance(servers: str, topic: str, records: int, payload_file: Path, compression: str,
                             folder: Path, throughput: float = -1, name: str = "producer-perf",
                             warmup_records: int = 0, client: dict[str, str] | None = None):
    """Starts ProducerPerformance; returns the Launched process (its console is its output file).
    `client`: connection settings (security) for its producer, given in a --producer.config file."""
    log_config = folder / "tools-log4j2.properties"
    log_config.write_text(log4j2_file_config(folder / "tools.log", level="WARN"))
    config_args: list[str] = []
    if client:
        config = folder / f"{name}-client.properties"
        config.write_text(render(client))
        config_args = ["--producer.config", str(config)]
    args = ["--bootstrap-server", servers, "--topic", topic, "--num-records", str(records),
            "--throughput", str(int(throughput)), "--payload-file", str(payload_file),
            *(["--warmup-records", str(warmup_records)] if warmup_records else []), *config_args,
            "--command-property", *producer_properties(compression)]
    command = java_command(kafka_libs(), "org.apache.kafka.tools.ProducerPerformance", args, log_config,
                           TOOL_JVM_OPTIONS)
    return launch(name, command, folder / f"{name}.out")


def start_load(flavour: str, servers: str, topic: str, first_index: int, records: int, record_size: int,
               compression: str, partitions: int, producer_config: dict, payload_file: Path, folder: Path,
               index: int, client: dict[str, str] | None = None):
    """One load generator of the ceiling; returns the Launched process. The librdkafka flavour's
    producer_config holds its connection settings; the Java flavour gets `client`'s."""
    import json

    from engine.bench.launch import launch
    from engine.child_process import python_module

    name = f"ceiling-{flavour}-{index}"
    if flavour == "java":
        return run_producer_performance(servers, topic, records, payload_file, compression, folder, name=name,
                                        client=client)
    spec = folder / f"{name}.json"
    spec.write_text(json.dumps({"pass": "load", "producer": producer_config, "target_topic": topic,
                                "partitions": partitions, "records": records, "first_index": first_index,
                                "record_size": record_size, "batch_size": 2000}))
    command, env = python_module("engine.bench.floor", str(spec))
    return launch(name, command, folder / f"{name}.out", env)
