"""Runs the benchmark: clusters, preloaded topics, replicators, measured windows, latency.

A case (record size, compression) preloads one source topic; every run of every row reads that same
topic, each replicator copying it under a source alias of its own (`A1`, `A2`, ...), so that its
remote topic and its stored progress are new. The warm-up round runs on the first `--records`
records; before each measured round the topic is topped up so that the fastest copy seen so far
would have a steady window of at least `--window-seconds` (with a margin of 2.5 over warm-up rates,
1.3 over measured ones).

A throughput run starts the replicator and polls the target's end offsets every POLL_S. The window
is the steady state: it opens at the first poll that sees at least 10 % of the records copied (or
5 s after the first record, whichever comes first) and closes at the first poll that sees at least
90 % (or once it lasted twice --window-seconds: a slow replicator need not copy the whole topic),
so the start-up (connections, JIT, the first fetches) and the tail (partitions finishing one by
one) are left out. Rates count the records copied between those two polls; CPU is the utime+stime
of every process of the replicator (the JVM; the engine's coordinator and its workers) between
them, and peak RSS the largest sum of their resident memory sampled in between. A --quick run instead measures from the last poll that sees no record to
the first that sees them all.
"""

from __future__ import annotations

import math
import os
import secrets
import statistics
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from confluent_kafka.admin import ConfigResource, ResourceType

from engine.bench import ceiling, floor, franz, payload, report
from engine.bench.ceiling import run_producer_performance
from engine.bench.engine_runner import engine_properties, honours_compression, start_engine
from engine.bench.launch import Launched, wait_exit
from engine.bench.mm2 import MM2_VARIANTS, bench_properties, cpu_count, mirror_maker_libs, render, start_mm2
from engine.bench.procstat import CLOCK_TICKS, TreeMeter, machine_ticks, read_stat
from engine.sandbox import KafkaCluster
from engine.sandbox.distribution import cache_root, kafka_libs

POLL_S = 0.1
FIRST_RECORD_TIMEOUT_S = 180.0
REPLICATORS = ("ceiling", "floor", "mm2-defaults", "mm2-tuned", "franz", "python", "c")
# the rows that copy the topic through a replicator (the ceiling and the floor only read or write it)
COPIERS = ("mm2-defaults", "mm2-tuned", "franz", "python", "c")
# the steady window: from this share of the records copied to that share
WINDOW_START_SHARE, WINDOW_END_SHARE = 0.10, 0.90
# ... or, for a replicator much slower than the fastest (whose rate sized the topic), from this many
# seconds after its first record, for at most this many times --window-seconds
WINDOW_OPENS_AFTER_S = 5.0
WINDOW_LONGEST = 2.0
# the topic is sized for the fastest copy rate seen times this, so that a faster measured run still
# keeps its window long enough; more when only warm-up runs were seen (a first, cold copy of a small
# topic is the slowest, e.g. 55,000 records/s where the measured run then made 132,000). Sizing high
# costs little: a slow replicator's window ends after WINDOW_LONGEST × --window-seconds anyway
SIZING_MARGIN = 1.3
WARMUP_SIZING_MARGIN = 2.5
# the preloaded topic never grows past this many bytes of records (the disk holds it and one copy)
MAX_TOPIC_BYTES = 12e9
LATENCY_METHOD = (
    "Per replicator, a fresh source topic and its remote copy `<source alias>.<topic>` are created first, the "
    "copy with message.timestamp.type=LogAppendTime (config sync is off, so no replicator resets it). Once one "
    "primer record per partition has been copied, Kafka's ProducerPerformance produces to the source at half "
    "the ceiling's measured records/s for the set number of seconds (same producer settings and compression). "
    "Copies are matched to source records by partition and offset (the copy of a fresh topic keeps offsets); "
    "latency = the target broker's LogAppendTime of the copy minus the source record's CreateTime, both from "
    "this machine's clock. The primer records are left out.")


class BenchError(RuntimeError):
    """A run could not be measured; the message says what and where its log is."""


@dataclass
class Settings:
    records: int = 200_000
    record_sizes: list[int] = field(default_factory=lambda: [1024])
    partitions: int = 4
    runs: int = 3
    compressions: list[str] = field(default_factory=lambda: ["none", "lz4"])
    replicators: list[str] = field(default_factory=lambda: list(REPLICATORS))
    tasks_max: int = field(default_factory=cpu_count)
    latency: bool = True
    latency_seconds: float = 15.0
    warmup: bool = True
    copy_timeout_s: float = 600.0
    # the fastest replicator's steady window at least this long; 0: no sizing, whole-copy windows
    window_s: float = 10.0


# -- clusters -------------------------------------------------------------------------------------

class Clusters:
    """The source and target: two sandbox clusters started here, or existing ones.

    On existing clusters the benchmark only touches names carrying its random token: topics under
    `mebench-<token>.`, cluster aliases `mebench-<token>-src<n>/-tgt` (so MM2's and the engine's
    internal topics and Connect groups carry it too), no heartbeats topic; `close()` deletes them all.
    Each replicator run copies under a source alias of its own (new_source_alias()).
    """

    def __init__(self, source_bootstrap: str | None = None, target_bootstrap: str | None = None,
                 base_dir: Path | None = None, say: Callable[[str], None] = print):
        self.token = secrets.token_hex(4)
        self.prefix = f"mebench-{self.token}."
        self.external = bool(source_bootstrap)
        self.say = say
        self.sandboxes: list[KafkaCluster] = []
        self.aliases_made = 0
        if self.external:
            if not target_bootstrap:
                raise BenchError("--source-bootstrap needs --target-bootstrap too")
            self.source_alias, self.target_alias = f"mebench-{self.token}-src", f"mebench-{self.token}-tgt"
            self.source_servers, self.target_servers = source_bootstrap, target_bootstrap
        else:
            self.source_alias, self.target_alias = "A", "B"
            self.base_dir = base_dir or cache_root() / "bench"
            self.source_servers = self.target_servers = ""

    @property
    def heartbeats(self) -> bool:
        return not self.external

    def start(self) -> Clusters:
        if not self.external:
            # named by this process: two benchmark runs (or a run and the tests) never share clusters
            for name in (f"bench{os.getpid()}A", f"bench{os.getpid()}B"):
                self.say(f"starting sandbox cluster {name} ...")
                self.sandboxes.append(KafkaCluster(name, nodes=1, base_dir=self.base_dir).start())
            self.source_servers = self.sandboxes[0].bootstrap_servers
            self.target_servers = self.sandboxes[1].bootstrap_servers
        return self

    def close(self) -> None:
        if self.external:
            for servers in (self.source_servers, self.target_servers):
                try:
                    self._delete_owned(servers)
                except KafkaException as error:  # cleaning up must not hide the results
                    self.say(f"could not delete the benchmark's topics on {servers}: {error}")
        for cluster in self.sandboxes:
            cluster.stop()
        self.sandboxes.clear()

    def _delete_owned(self, servers: str) -> None:
        admin = admin_client(servers)
        owned = [t for t in admin.list_topics(timeout=30).topics if self.token in t]
        if owned:
            for future in admin.delete_topics(owned, operation_timeout=30).values():
                future.result()
        groups = [g.group_id for g in admin.list_consumer_groups().result().valid if self.token in g.group_id]
        if groups:
            for future in admin.delete_consumer_groups(groups).values():
                try:
                    future.result()
                except KafkaException:
                    pass
        self.say(f"deleted {len(owned)} topics and {len(groups)} groups of this benchmark on {servers}")

    def new_source_alias(self) -> str:
        """A source alias no run used before: its remote topic and stored progress start empty."""
        self.aliases_made += 1
        return f"{self.source_alias}{self.aliases_made}"

    @staticmethod
    def remote_topic(topic: str, source_alias: str) -> str:
        """The replicated topic's name under the default replication policy."""
        return f"{source_alias}.{topic}"

    def create_topic(self, servers: str, topic: str, partitions: int, config: dict[str, str] | None = None) -> None:
        admin = admin_client(servers)
        admin.create_topics([NewTopic(topic, partitions, 1 if not self.external else -1,
                                      config=config or {})])[topic].result(timeout=60)
        deadline = time.monotonic() + 30
        while end_offsets(admin, topic, partitions) is None:
            if time.monotonic() > deadline:
                raise BenchError(f"topic {topic} on {servers} has no leaders after 30s")
            time.sleep(0.1)

    def delete_topics(self, servers: str, topics: list[str]) -> None:
        admin = admin_client(servers)
        existing = set(admin.list_topics(timeout=30).topics)
        doomed = [t for t in topics if t in existing]
        if doomed:
            for future in admin.delete_topics(doomed, operation_timeout=30).values():
                try:
                    future.result()
                except KafkaException:
                    pass

    def properties(self, topics: list[str], tasks_max: int, compression: str, source_alias: str,
                   tuning: str = "harness") -> dict[str, str]:
        return bench_properties(source_alias, self.target_alias, self.source_servers, self.target_servers,
                                topics, tasks_max, compression, heartbeats=self.heartbeats, tuning=tuning)

    def target_broker_pids(self) -> list[int]:
        """The target cluster's broker processes (sandbox only): the ceiling reports their CPU."""
        if not self.sandboxes:
            return []
        return [pid for node in self.sandboxes[-1].members if (pid := node.pid()) is not None]

    def max_message_bytes(self, servers: str, topic: str) -> int | None:
        """The topic's max.message.bytes, which the engine's producer takes as its record limit."""
        resource = ConfigResource(ResourceType.TOPIC, topic)
        try:
            entries = admin_client(servers).describe_configs([resource])[resource].result(timeout=30)
        except (KafkaException, TimeoutError):  # then the producer keeps librdkafka's record limit
            return None
        entry = entries.get("max.message.bytes")
        return int(entry.value) if entry is not None and entry.value else None


def admin_client(servers: str) -> AdminClient:
    # log_level 3: a broker closing an idle connection is not news on the benchmark's console
    return AdminClient({"bootstrap.servers": servers, "log_level": 3})


def end_offsets(admin: AdminClient, topic: str, partitions: int) -> dict[int, int] | None:
    """High watermark per partition, or None while the topic or a leader is missing."""
    try:
        futures = admin.list_offsets({TopicPartition(topic, p): OffsetSpec.latest() for p in range(partitions)},
                                     request_timeout=5)
        return {tp.partition: f.result().offset for tp, f in futures.items()}
    except KafkaException:
        return None


# -- one throughput run ---------------------------------------------------------------------------

def tuning_of(replicator: str) -> str:
    """Which client settings a row's mm2.properties gets (see mm2.bench_properties)."""
    return {"mm2-defaults": "defaults", "mm2-tuned": "tuned"}.get(replicator, "harness")


def start_replicator(replicator: str, clusters: Clusters, topics: list[str], settings: Settings,
                     compression: str, folder: Path, source_alias: str) -> Launched:
    folder.mkdir(parents=True, exist_ok=True)
    props = clusters.properties(topics, settings.tasks_max, compression, source_alias, tuning_of(replicator))
    if replicator == "franz":
        remote = clusters.remote_topic(topics[0], source_alias)
        if remote not in admin_client(clusters.target_servers).list_topics(timeout=30).topics:
            clusters.create_topic(clusters.target_servers, remote, settings.partitions)
        spec = franz.relay_spec(clusters.source_servers, clusters.target_servers, topics[0], remote, compression)
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


def window_bounds(records: int, steady: bool) -> tuple[int, int]:
    """(copied records that open the window, copied records that close it)."""
    if not steady:
        return 0, records
    return max(1, math.ceil(records * WINDOW_START_SHARE)), max(1, math.floor(records * WINDOW_END_SHARE))


def measure_copy(process: Launched, admin: AdminClient, remote_topic: str, partitions: int, records: int,
                 timeout_s: float, steady: bool = True, longest_s: float = float("inf")) -> dict:
    """Polls the target until the window closes; returns the window's numbers (module docstring).
    A steady window also opens WINDOW_OPENS_AFTER_S after the first record and closes after longest_s."""
    meter = TreeMeter(process.pid)
    opens_at, closes_at = window_bounds(records, steady)
    started = last_empty = time.monotonic()
    opened: tuple[float, int] | None = None
    first_record_at: float | None = None
    while True:
        offsets = end_offsets(admin, remote_topic, partitions)
        now = time.monotonic()
        copied = sum(offsets.values()) if offsets else 0
        if copied and first_record_at is None:
            first_record_at = now
        if opened is None:
            # the window's zero moves with every poll before it opens: in a steady window to the
            # first poll past 10 %, in a whole-copy window to the last poll that sees no record
            if steady:
                meter.start_window()
                if copied >= opens_at or (first_record_at is not None and copied > 0
                                          and now - first_record_at >= WINDOW_OPENS_AFTER_S):
                    opened = (now, copied)
            elif copied == 0:
                meter.start_window()
                last_empty = now
            else:
                meter.sample()
                opened = (last_empty, 0)
        else:
            meter.sample()
        if opened is not None and (copied >= closes_at or now - opened[0] >= longest_s) \
                and (now > opened[0] or not steady):
            break
        if not process.alive():
            raise BenchError(f"{process.name} exited with code {process.process.returncode} after copying "
                             f"{copied:,} of {records:,} records\n{process.log_tail()}")
        limit = FIRST_RECORD_TIMEOUT_S if first_record_at is None else timeout_s
        if now - (started if first_record_at is None else first_record_at) > limit:
            what = "the first record" if first_record_at is None else f"all {records:,} records ({copied:,} copied)"
            raise BenchError(f"{process.name}: no {what} on {remote_topic} within {limit:.0f}s\n{process.log_tail()}")
        process.tree()  # remembers every descendant, so a stop can reach them
        time.sleep(POLL_S)
    assert opened is not None and first_record_at is not None
    if copied <= opened[1]:
        raise BenchError(f"{process.name}: the window saw no record copied ({records:,} records were copied "
                         f"between two polls {POLL_S} s apart); give more --records")
    window_s = max(now - opened[0], POLL_S)
    return {"startup_s": first_record_at - started, "window_s": window_s,
            "window_records": copied - opened[1], "window_first_record": opened[1], "window_last_record": copied,
            "cpu_s": meter.cpu_seconds(), "peak_rss_total_bytes": meter.peak_total_rss,
            "processes": meter.processes()}


def _relative(folder: Path) -> str:
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
                   run_index: int, warmup: bool) -> dict:
    """One run of one row on the case's preloaded topic; returns its record (see report.py)."""
    source_alias = clusters.new_source_alias()
    base = {"replicator": replicator, "record_size": case.record_size, "compression": case.compression,
            "partitions": settings.partitions, "tasks_max": settings.tasks_max, "records": case.records,
            "run": run_index, "warmup": warmup, "topic": case.topic, "source_alias": source_alias,
            "folder": _relative(folder)}
    if replicator in ("ceiling", "floor"):
        target_topic = f"{clusters.prefix}{replicator}-{uuid.uuid4().hex[:8]}"
    else:
        target_topic = clusters.remote_topic(case.topic, source_alias)
    bytes_per_record = case.bytes_per_record
    folder.mkdir(parents=True, exist_ok=True)
    try:
        if replicator == "ceiling":
            return {**base, **ceiling_run(clusters, case, settings, source_alias, folder)}
        if replicator == "floor":
            return {**base, **floor_run(clusters, case, settings, source_alias, target_topic, folder)}
        process = start_replicator(replicator, clusters, [case.topic], settings, case.compression, folder,
                                   source_alias)
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


def measure_load(processes: list[Launched], admin: AdminClient, topic: str, partitions: int, records: int,
                 timeout_s: float, broker_pids: list[int], longest_s: float = float("inf"),
                 steady: bool = True) -> dict:
    """The ceiling's window: like measure_copy's (steady, or a --quick run's whole load), over load
    generators that exit when done; also the generators' cores, the target broker's cores and how
    busy the machine was."""
    meter = TreeMeter(processes[0].pid, other_roots=tuple(p.pid for p in processes[1:]))
    opens_at, closes_at = window_bounds(records, steady)
    started = time.monotonic()
    opened: tuple[float, int, tuple[int, int], int] | None = None
    last_empty: tuple[float, int, tuple[int, int], int] | None = None
    while True:
        offsets = end_offsets(admin, topic, partitions)
        now = time.monotonic()
        copied = sum(offsets.values()) if offsets else 0
        if opened is None:
            if steady or copied == 0:
                meter.start_window()
                last_empty = (now, copied, machine_ticks(), _ticks(broker_pids))
            if steady and copied >= opens_at:
                opened = last_empty
            elif not steady and copied > 0:
                meter.sample()
                opened = last_empty or (started, 0, machine_ticks(), _ticks(broker_pids))
        else:
            meter.sample()
        if opened is not None and (copied >= closes_at or now - opened[0] >= longest_s) and now > opened[0]:
            break
        failed = [p for p in processes if not p.alive() and p.process.returncode != 0]
        if failed:
            raise BenchError(f"{failed[0].name} exited with code {failed[0].process.returncode}\n"
                             f"{failed[0].log_tail()}")
        if all(not p.alive() for p in processes) and copied < closes_at:
            raise BenchError(f"the load generators ended with {copied:,} of {records:,} records on {topic}")
        if now - started > timeout_s:
            raise BenchError(f"the ceiling's load: {copied:,} of {records:,} records on {topic} after {timeout_s:.0f}s")
        for process in processes:
            process.tree()
        time.sleep(POLL_S)
    if copied <= opened[1]:
        raise BenchError(f"the ceiling's window saw no record written to {topic}")
    busy, total = (a - b for a, b in zip(machine_ticks(), opened[2]))
    window_s = now - opened[0]
    broker_ticks = _ticks(broker_pids)
    return {"window_s": window_s, "window_records": copied - opened[1], "cpu_s": meter.cpu_seconds(),
            "generator_cores": meter.cpu_seconds() / window_s,
            "target_broker_cores": (broker_ticks - opened[3]) / CLOCK_TICKS / window_s if broker_pids else None,
            "machine_busy": busy / total if total else None}


def _ticks(pids: list[int]) -> int:
    return sum(stat.cpu_ticks for stat in (read_stat(pid) for pid in pids) if stat is not None)


def ceiling_run(clusters: Clusters, case: Case, settings: Settings, source_alias: str, folder: Path) -> dict:
    """The ceiling (engine/bench/ceiling.py): each flavour's load in turn, the better one counts."""
    processes_count = ceiling.load_processes(cpu_count())
    props = clusters.properties([case.topic], settings.tasks_max, case.compression, source_alias)
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
                processes.append(ceiling.start_load(flavour, clusters.target_servers, topic, first, count,
                                                    case.record_size, case.compression, settings.partitions,
                                                    producer, payload_file, folder, index))
            window = measure_load(processes, admin_client(clusters.target_servers), topic, settings.partitions,
                                  records, case.timeout_s, clusters.target_broker_pids(),
                                  longest_s=WINDOW_LONGEST * settings.window_s or float("inf"),
                                  steady=settings.window_s > 0)
            window["records_per_s"] = window["window_records"] / window["window_s"]
            flavours.append({"flavour": flavour, "processes": len(processes), "records": records, **window})
        except (BenchError, RuntimeError, KafkaException) as error:
            flavours.append({"flavour": flavour, "processes": len(processes), "error": error_text(error).splitlines()[0]})
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
              folder: Path) -> dict:
    """The floor row (engine/bench/floor.py) with the C loop's own settings for this case."""
    clusters.create_topic(clusters.target_servers, target_topic, settings.partitions)
    props = clusters.properties([case.topic], settings.tasks_max, case.compression, source_alias)
    spec = {**floor.engine_clients({**props, **engine_properties("c")},
                                   clusters.max_message_bytes(clusters.target_servers, target_topic)),
            "source_topic": case.topic, "target_topic": target_topic, "partitions": settings.partitions,
            "records": case.records, "chunk_records": floor.chunk_records(case.bytes_per_record)}
    consume, produce = floor.run_floor(spec, folder, case.timeout_s)
    return {**floor.floor_figures(consume, produce, case.bytes_per_record), "chunk_records": spec["chunk_records"]}


# -- latency at half load -------------------------------------------------------------------------

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
                if m.error():
                    if m.error().code() != KafkaError._PARTITION_EOF:
                        raise BenchError(f"reading {topic}: {m.error()}")
                    continue
                if m.offset() < ends[m.partition()]:
                    found[(m.partition(), m.offset())] = m.timestamp()
                if m.offset() + 1 >= ends[m.partition()]:
                    pending.discard(m.partition())
        return found
    finally:
        consumer.close()


def latency_run(clusters: Clusters, replicator: str, record_size: int, compression: str, settings: Settings,
                rate: float, folder: Path) -> dict:
    """Latency at a steady offered load (LATENCY_METHOD): p50/p99 of copy LogAppendTime - source CreateTime."""
    folder.mkdir(parents=True, exist_ok=True)
    topic = f"{clusters.prefix}lat-{replicator}-{record_size}-{uuid.uuid4().hex[:6]}"
    source_alias = clusters.new_source_alias()
    remote = clusters.remote_topic(topic, source_alias)
    partitions = settings.partitions
    records = max(1, int(rate * settings.latency_seconds))
    base = {"replicator": replicator, "record_size": record_size, "compression": compression,
            "offered_records_per_s": rate, "records": records, "topic": topic}
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
        latencies, wrong_type = [], 0
        for position, (_, created) in sources.items():
            copy = copies.get(position)
            if copy is None:
                continue
            kind, appended = copy
            if kind != 2:  # confluent_kafka.TIMESTAMP_LOG_APPEND_TIME
                wrong_type += 1
                continue
            latencies.append(float(appended - created))
        if wrong_type:
            raise BenchError(f"{wrong_type} copies on {remote} do not carry LogAppendTime; was its config reset?")
        if not latencies:
            raise BenchError(f"no latency samples from {remote}")
        return {**base, **report.latency_summary(latencies), "missing_copies": len(sources) - len(latencies),
                "target_records": sum(source_ends.values())}
    finally:
        clusters.delete_topics(clusters.source_servers, [topic])
        clusters.delete_topics(clusters.target_servers, [remote])


# -- the whole benchmark ---------------------------------------------------------------------------

def environment(settings: Settings) -> dict:
    return {
        "cpus": cpu_count(),
        "cpu_model": _cpu_model(),
        "kafka_version": "4.3.1",
        "python": sys.version.split()[0],
        "engine_honours_compression": honours_compression(),
        "settings": {k: v for k, v in vars(settings).items()},
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def fetch_tools(settings: Settings, say: Callable[[str], None]) -> None:
    """The Kafka jars, MM2's when an MM2 row runs, the franz-go relay when its row runs: a row whose
    tool cannot be had here (no Go) is left out with one line saying why."""
    kafka_libs()
    if any(r in MM2_VARIANTS for r in settings.replicators):
        mirror_maker_libs()
    if "franz" in settings.replicators:
        try:
            franz.relay_binary()
        except franz.RelayUnavailable as error:
            say(f"mirror-engine bench: {error}")
            settings.replicators = [r for r in settings.replicators if r != "franz"]


def plan(settings: Settings) -> list[tuple[int, str, int, str]]:
    """(record size, compression, run index, replicator) in execution order; run 0 is the warm-up.
    Replicators take turns within each run so that drift of the machine spreads over all of them."""
    order = [r for r in REPLICATORS if r in settings.replicators]
    first_run = 0 if settings.warmup else 1
    return [(size, compression, run, replicator)
            for size in settings.record_sizes for compression in settings.compressions
            for run in range(first_run, settings.runs + 1) for replicator in order]


def latency_rate(runs: list[dict], record_size: int, compression: str) -> tuple[float, str]:
    """Half the ceiling's median records/s; without a ceiling, half the fastest replicator's median."""
    def median_of(replicator: str | None) -> float | None:
        values = [r["records_per_s"] for r in runs if not r.get("warmup") and not r.get("error")
                  and r["record_size"] == record_size and r["compression"] == compression
                  and (replicator is None or r["replicator"] == replicator) and r.get("records_per_s")]
        return statistics.median(values) if values else None

    ceiling = median_of("ceiling")
    if ceiling:
        return ceiling / 2, "half the ceiling"
    fastest = max((v for v in (median_of(r) for r in COPIERS) if v), default=None)
    if fastest:
        return fastest / 2, "half the fastest replicator (no ceiling measured)"
    return 1000.0, "1000 records/s (nothing measured)"


def error_text(error: BaseException) -> str:
    """An error's message, or its type where it has none (a TimeoutError): never empty."""
    return str(error).strip() or type(error).__name__


def failure_log(folder: Path, error: BaseException) -> None:
    """The failed run's traceback, next to its logs."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "error.txt", "a") as file:
        file.write("".join(traceback.format_exception(error)))


def run_line(result: dict) -> str:
    """One finished run on the console."""
    if result["replicator"] == "floor":
        return (f"consume-only {report.num_text(result['consume_cpu_us_per_record'], 2)} + produce-only "
                f"{report.num_text(result['produce_cpu_us_per_record'], 2)} CPU-µs/record = "
                f"{report.num_text(result['cpu_s_per_gb'])} CPU-s/GB")
    line = f"{report.num_text(result['records_per_s'], 0)} records/s, {report.num_text(result['mb_per_s'])} MB/s"
    if result.get("cpu_s") is not None:
        line += (f", {report.num_text(result['cpu_s_per_gb'])} CPU-s/GB, "
                 f"peak RSS {result['peak_rss_total_bytes'] / 2**20:,.0f} MiB, window {result['window_s']:.1f} s "
                 f"({result['window_records']:,} records)")
    return line


def run_benchmark(settings: Settings, clusters: Clusters, out: Path, say: Callable[[str], None]) -> dict:
    """Every planned throughput run, then the latency phase; returns the report document."""
    from tqdm import tqdm

    runs: list[dict] = []
    latency: list[dict] = []
    cases: list[Case] = []
    steps = plan(settings)
    latency_cases = [(size, settings.compressions[0], r) for size in settings.record_sizes
                     for r in REPLICATORS if r in settings.replicators and r in COPIERS] if settings.latency else []
    with tqdm(total=len(steps) + len(latency_cases), unit="run", dynamic_ncols=True) as bar:
        case: Case | None = None
        for step, (size, compression, run_index, replicator) in enumerate(steps):
            if case is None or (case.record_size, case.compression) != (size, compression):
                case = Case(size, compression, f"{clusters.prefix}tp-{size}-{compression}-{uuid.uuid4().hex[:6]}")
                cases.append(case)
                bar.set_description(f"preloading {report.size_text(size)} {compression}")
                preload_case(clusters, case, settings.records, settings.partitions)
                bar.write(f"preloaded {case.records:,} records of {report.size_text(size)} ({compression}) "
                          f"in {case.preload_s:.0f} s")
            if settings.warmup and run_index > case.sized_for_round:
                # before each measured round: sized by the fastest copy seen so far (the warm-up, then
                # the measured rounds too), so a window the warm-up sized short is not repeated
                case.sized_for_round = run_index
                seen = [r for r in runs if (r["record_size"], r["compression"]) == (size, compression)]
                wanted = records_for_window(seen, case.records, case.bytes_per_record, settings)
                if wanted > case.records:
                    bar.set_description(f"topping up {report.size_text(size)} {compression}")
                    before = case.records
                    preload_case(clusters, case, wanted, settings.partitions)
                    bar.write(f"topped up to {case.records:,} records for a {settings.window_s:g} s steady window "
                              f"of the fastest copy so far: {case.records - before:,} more")
                case.timeout_s = copy_timeout(seen, case.records, settings)
                case.ceiling_records = records_for_window(seen, case.records, case.bytes_per_record, settings,
                                                          rows=("ceiling",))
            label = f"{replicator:<12} {report.size_text(size):>6} {compression:<4} " + (
                "warm-up" if run_index == 0 else f"run {run_index}/{settings.runs}")
            bar.set_description(label)
            folder = out / "runs" / f"{size}-{compression}" / f"{replicator}-{run_index}"
            folder.mkdir(parents=True, exist_ok=True)
            try:
                result = throughput_run(clusters, replicator, case, settings, folder, run_index,
                                        warmup=run_index == 0)
                line = run_line(result)
            except Exception as error:  # noqa: BLE001 - one failed run is reported, the others still run
                failure_log(folder, error)
                result = {"replicator": replicator, "record_size": size, "compression": compression, "run": run_index,
                          "warmup": run_index == 0, "error": error_text(error), "folder": _relative(folder)}
                line = "FAILED: " + error_text(error).splitlines()[0]
            runs.append(result)
            bar.write(f"{label}: {line}")
            bar.update()
            last_of_case = step + 1 == len(steps) or steps[step + 1][:2] != (size, compression)
            if last_of_case:
                clusters.delete_topics(clusters.source_servers, [case.topic])
        for size, compression, replicator in latency_cases:
            rate, basis = latency_rate(runs, size, compression)
            label = f"latency {replicator:<7} {report.size_text(size):>6} {compression}"
            bar.set_description(label)
            try:
                result = latency_run(clusters, replicator, size, compression, settings, rate,
                                     out / "latency" / f"{replicator}-{size}")
                result["rate_basis"] = basis
                line = f"{rate:,.0f} records/s offered ({basis}): p50 {result['p50_ms']:.1f} ms, " \
                       f"p99 {result['p99_ms']:.1f} ms"
            except Exception as error:  # noqa: BLE001 - one failed run is reported, the others still run
                failure_log(out / "latency", error)
                result = {"replicator": replicator, "record_size": size, "compression": compression,
                          "offered_records_per_s": rate, "rate_basis": basis, "error": error_text(error)}
                line = "FAILED: " + error_text(error).splitlines()[0]
            latency.append(result)
            bar.write(f"{label}: {line}")
            bar.update()
    summary = report.summarise(runs)
    return {"kind": "mirror-engine bench",
            "cases": [{"record_size": c.record_size, "compression": c.compression, "records": c.records,
                       "preload_s": c.preload_s} for c in cases], "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "environment": environment(settings),
            "clusters": {"mode": "external" if clusters.external else "sandbox",
                         "source_alias": clusters.source_alias, "target_alias": clusters.target_alias},
            "units": {"MB": "10^6 bytes", "GB": "10^9 bytes",
                      "mb_per_s": "key + value + header bytes per second",
                      "value_mb_per_s": "value bytes per second (what MM2's byte-rate counts)",
                      "cpu_s_per_gb": "CPU-seconds (utime+stime of every replicator process) per GB of "
                                      "key+value+header bytes"},
            "method": {"window": " ".join(p.replace("\n", " ") for p in __doc__.strip().split("\n\n")[1:3]),
                       "latency": LATENCY_METHOD},
            "summary": summary, "latency": latency, "runs": runs}
