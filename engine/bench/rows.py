"""One throughput run of one row on a case's preloaded topic: the copiers, the ceiling and the floor.

A case (record size, compression) preloads one source topic; every run of every row reads that same
topic, each replicator copying it under a source alias of its own (`A1`, `A2`, ...), so that its
remote topic and its stored progress are new. The warm-up round runs on the first `--records`
records; before each measured round the topic is topped up so that the fastest copy seen so far
would have a steady window of at least `--window-seconds` (with a margin of 2.5 over warm-up rates,
1.3 over measured ones).
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException

from engine.bench import ceiling, floor, franz, payload, report
from engine.bench.clusters import Clusters, admin_client
from engine.bench.engine_runner import engine_properties, honours_compression, start_engine
from engine.bench.launch import Launched
from engine.bench.mm2 import MM2_VARIANTS, cpu_count, render, start_mm2
from engine.bench.security import PLAINTEXT
from engine.bench.settings import COPIERS, BenchError, Settings, error_text
from engine.bench.window import WINDOW_END_SHARE, WINDOW_LONGEST, WINDOW_START_SHARE, measure_copy, measure_load

# the topic is sized for the fastest copy rate seen times this, so that a faster measured run still
# keeps its window long enough; more when only warm-up runs were seen (a first, cold copy of a small
# topic is the slowest, e.g. 55,000 records/s where the measured run then made 132,000). Sizing high
# costs little: a slow replicator's window ends after WINDOW_LONGEST × --window-seconds anyway
SIZING_MARGIN = 1.3
WARMUP_SIZING_MARGIN = 2.5
# the preloaded topic never grows past this many bytes of records (the disk holds it and one copy)
MAX_TOPIC_BYTES = 12e9


def tuning_of(replicator: str) -> str:
    """Which client settings a row's mm2.properties gets (see mm2.bench_properties)."""
    return {"mm2-defaults": "defaults", "mm2-tuned": "tuned"}.get(replicator, "harness")


def start_replicator(replicator: str, clusters: Clusters, topics: list[str], settings: Settings,
                     compression: str, folder: Path, source_alias: str, mode: str = PLAINTEXT) -> Launched:
    """Starts one copier of `topics` with the client settings of security `mode`."""
    folder.mkdir(parents=True, exist_ok=True)
    props = clusters.properties(topics, settings.tasks_max, compression, source_alias, tuning_of(replicator), mode)
    if replicator == "franz":
        remote = clusters.remote_topic(topics[0], source_alias)
        if remote not in admin_client(clusters.target_servers).list_topics(timeout=30).topics:
            clusters.create_topic(clusters.target_servers, remote, settings.partitions)
        source, target = clusters.client("source", mode), clusters.client("target", mode)
        spec = franz.relay_spec(source.servers, target.servers, topics[0], remote, compression,
                                source.relay, target.relay)
        return franz.start_relay(franz.relay_binary(), spec, folder)
    config = folder / "mm2.properties"
    if replicator in MM2_VARIANTS:
        config.write_text(render(props))
        return start_mm2(config, clusters.target_alias, folder)
    config.write_text(render({**props, **engine_properties(replicator)}))
    return start_engine(config, replicator, folder)


def replicator_notes(replicator: str, compression: str) -> list[str]:
    if replicator in ("python", "c") and compression != "none" and not honours_compression():
        return [(f"engine ignored producer.compression.type={compression} (not supported by this checkout's "
                "config yet): its copies were written uncompressed")]
    return []


def relative(folder: Path) -> str:
    """runs/<case>/<run>: the report names no path of the machine it ran on."""
    return "/".join(folder.parts[-3:])


@dataclass
class Case:
    """One record size and compression: the preloaded source topic every run of it reads."""

    record_size: int
    compression: str
    topic: str
    records: int = 0
    preload_s: float = 0.0
    timeout_s: float = 600.0
    sized_for_round: int = 0  # the last measured round the topic was sized for
    ceiling_records: int = 0  # what the ceiling's load writes: sized by the ceiling's own rate

    def entry(self) -> dict:
        """The case as the report lists it."""
        return {"record_size": self.record_size, "compression": self.compression, "records": self.records,
                "preload_s": self.preload_s}

    @property
    def bytes_per_record(self) -> float:
        return payload.total_bytes(self.records, self.record_size) / self.records


def preload_case(clusters: Clusters, case: Case, records: int, partitions: int) -> None:
    """Creates the case's topic on first use, then produces records until it holds `records`."""
    if case.records == 0:
        clusters.create_topic(clusters.source_servers, case.topic, partitions)
    if records > case.records:
        case.preload_s += payload.preload(clusters.source_servers, case.topic, records - case.records,
                                          case.record_size, partitions, case.compression, first_index=case.records)
        case.records = records


def records_for_window(runs: list[dict], current: int, bytes_per_record: float, settings: Settings,
                       rows: tuple[str, ...] = COPIERS) -> int:
    """The topic size that gives the fastest copy of `runs` a steady window of settings.window_s
    (with a margin), never fewer records than now, never more bytes than MAX_TOPIC_BYTES."""
    copies = [r for r in runs if r.get("replicator") in rows and not r.get("error") and r.get("records_per_s")]
    if not copies or settings.window_s <= 0:
        return current
    margin = SIZING_MARGIN if any(not r.get("warmup") for r in copies) else WARMUP_SIZING_MARGIN
    needed = math.ceil(max(r["records_per_s"] for r in copies) * settings.window_s * margin
                       / (WINDOW_END_SHARE - WINDOW_START_SHARE))
    return max(current, min(needed, int(MAX_TOPIC_BYTES / bytes_per_record)))


def copy_timeout(runs: list[dict], records: int, settings: Settings) -> float:
    """Time allowed for one copy: settings.copy_timeout_s, or 3× what the slowest copy of `runs` needs."""
    rates = [r["records_per_s"] for r in runs
             if r.get("replicator") in COPIERS and not r.get("error") and r.get("records_per_s")]
    return max(settings.copy_timeout_s, 3 * records / min(rates)) if rates else settings.copy_timeout_s


def throughput_run(clusters: Clusters, replicator: str, case: Case, settings: Settings, folder: Path,
                   run_index: int, warmup: bool, mode: str = PLAINTEXT) -> dict:
    """One run of one row on the case's preloaded topic, its clients in security `mode`; returns its
    record (see report.py)."""
    source_alias = clusters.new_source_alias()
    base = {"replicator": replicator, "record_size": case.record_size, "compression": case.compression,
            "security": mode,
            "partitions": settings.partitions, "tasks_max": settings.tasks_max, "records": case.records,
            "run": run_index, "warmup": warmup, "topic": case.topic, "source_alias": source_alias,
            "folder": relative(folder)}
    if replicator in ("ceiling", "floor"):
        target_topic = f"{clusters.prefix}{replicator}-{uuid.uuid4().hex[:8]}"
    else:
        target_topic = clusters.remote_topic(case.topic, source_alias)
    bytes_per_record = case.bytes_per_record
    folder.mkdir(parents=True, exist_ok=True)
    try:
        if replicator == "ceiling":
            return {**base, **ceiling_run(clusters, case, settings, source_alias, folder, mode)}
        if replicator == "floor":
            return {**base, **floor_run(clusters, case, settings, source_alias, target_topic, folder, mode)}
        process = start_replicator(replicator, clusters, [case.topic], settings, case.compression, folder,
                                   source_alias, mode)
        try:
            window = measure_copy(process, admin_client(clusters.target_servers), target_topic,
                                  settings.partitions, case.records, case.timeout_s, steady=settings.window_s > 0,
                                  longest_s=WINDOW_LONGEST * settings.window_s or float("inf"))
        finally:
            stop_started = time.monotonic()
            exit_code = process.stop()
            stop_s = time.monotonic() - stop_started
        records_in_window = window["window_records"]
        metrics = report.window_metrics(records_in_window, records_in_window * bytes_per_record,
                                        records_in_window * case.record_size, window["window_s"], window["cpu_s"])
        processes = window.pop("processes")
        notes = replicator_notes(replicator, case.compression)
        if settings.window_s > 0 and window["window_s"] < settings.window_s and not warmup:
            notes.append(f"a steady window was shorter than {settings.window_s:g} s: the topic was sized for a "
                         "slower copy than this run's (the next rounds get more records)")
        return {**base, **window, **metrics,
                "max_rss_process_bytes": max((p["hwm_bytes"] for p in processes), default=0),
                "processes": processes, "exit_code": exit_code, "stop_s": stop_s,
                "notes": notes}
    finally:
        clusters.delete_topics(clusters.target_servers, [target_topic])


def ceiling_run(clusters: Clusters, case: Case, settings: Settings, source_alias: str, folder: Path,
                mode: str = PLAINTEXT) -> dict:
    """The ceiling (engine/bench/ceiling.py): each flavour's load in turn, the better one counts."""
    processes_count = ceiling.load_processes(cpu_count())
    props = clusters.properties([case.topic], settings.tasks_max, case.compression, source_alias, mode=mode)
    target = clusters.client("target", mode)
    payload_file = payload.write_payload_file(folder / f"payload-{case.record_size}.txt", case.record_size)
    flavours = []
    for flavour in ceiling.FLAVOURS:
        topic = f"{clusters.prefix}ceiling-{flavour}-{uuid.uuid4().hex[:8]}"
        clusters.create_topic(clusters.target_servers, topic, settings.partitions)
        producer = floor.engine_clients({**props, **engine_properties("c")},
                                        clusters.max_message_bytes(clusters.target_servers, topic))["producer"]
        processes: list[Launched] = []
        try:
            records = max(case.records, case.ceiling_records)
            for index, (first, count) in enumerate(ceiling.split(records, processes_count)):
                processes.append(ceiling.start_load(flavour, target.servers, topic, first, count,
                                                    case.record_size, case.compression, settings.partitions,
                                                    producer, payload_file, folder, index, target.properties))
            window = measure_load(processes, admin_client(clusters.target_servers), topic, settings.partitions,
                                  records, case.timeout_s, clusters.target_broker_pids(),
                                  longest_s=WINDOW_LONGEST * settings.window_s or float("inf"),
                                  steady=settings.window_s > 0)
            window["records_per_s"] = window["window_records"] / window["window_s"]
            flavours.append({"flavour": flavour, "processes": len(processes), "records": records, **window})
        except (BenchError, RuntimeError, KafkaException) as error:
            flavours.append({"flavour": flavour, "processes": len(processes),
                             "error": error_text(error).splitlines()[0]})
        finally:
            for process in processes:
                process.stop(deadline_s=5)
            clusters.delete_topics(clusters.target_servers, [topic])
    measured = [f for f in flavours if not f.get("error")]
    if not measured:
        raise BenchError("no ceiling flavour could be measured: " + "; ".join(f["error"] for f in flavours))
    best = max(measured, key=lambda f: f["records_per_s"])
    rps = best["records_per_s"]
    return {"records_per_s": rps, "mb_per_s": rps * case.bytes_per_record / report.MB,
            "value_mb_per_s": rps * case.record_size / report.MB, "duration_s": best["window_s"],
            "ceiling_flavour": best["flavour"], "ceiling_flavours": flavours,
            "machine_busy": best["machine_busy"], "generator_cores": best["generator_cores"],
            "target_broker_cores": best["target_broker_cores"],
            "ceiling_limit": ceiling.limit_text(best["flavour"], best["processes"], best["machine_busy"],
                                                best["generator_cores"], best["target_broker_cores"], cpu_count()),
            "notes": [f"ceiling: {f['flavour']} failed: {f['error']}" for f in flavours if f.get("error")]}


def floor_run(clusters: Clusters, case: Case, settings: Settings, source_alias: str, target_topic: str,
              folder: Path, mode: str = PLAINTEXT) -> dict:
    """The floor row (engine/bench/floor.py) with the C loop's own settings for this case."""
    clusters.create_topic(clusters.target_servers, target_topic, settings.partitions)
    props = clusters.properties([case.topic], settings.tasks_max, case.compression, source_alias, mode=mode)
    spec = {**floor.engine_clients({**props, **engine_properties("c")},
                                   clusters.max_message_bytes(clusters.target_servers, target_topic)),
            "source_topic": case.topic, "target_topic": target_topic, "partitions": settings.partitions,
            "records": case.records, "chunk_records": floor.chunk_records(case.bytes_per_record)}
    consume, produce = floor.run_floor(spec, folder, case.timeout_s)
    return {**floor.floor_figures(consume, produce, case.bytes_per_record), "chunk_records": spec["chunk_records"]}
