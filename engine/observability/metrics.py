"""The coordinator's HTTP endpoint: /metrics (Prometheus), /health, /ready, /status and the status
page at / (engine/observability/page.py).

Served on 127.0.0.1 unless `mirror.engine.metrics.listen` says otherwise, by a small threaded
http.server. Every answer is rendered from one snapshot of the engine (engine.observability.snapshot),
taken on the coordinator's event loop (the HTTP thread hands the work over and waits up to
LOOP_ANSWER_S), so it shows one consistent state, and /health is exactly "the coordinator's loop
answers".

Metrics, per partition from the workers' reports:
- MM2's, named as the Prometheus JMX exporter's usual MM2 rules name them (lower case, `-` as
  `_`, type GAUGE as those rules declare): kafka_connect_mirror_mirrorsourceconnector_<metric>
  {source, target, topic (the remote topic), partition} and
  kafka_connect_mirror_mirrorcheckpointconnector_checkpoint_latency_ms* {source, target, group,
  topic, partition}; windowed as MM2's (engine/observability/windowed_stats.py), NaN when the window is empty;
- the engine's own: mirror_engine_*.
What each readiness condition and the heartbeat alert mean: engine/observability/health.py.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from engine.config.model import HEARTBEAT_ALERT_KEY, METRICS_LISTEN_KEY
from engine.config.values import ConfigError, parse_listen
from engine.observability import health, page
from engine.observability.history import History
from engine.observability.snapshot import EngineStatus
from engine.security.secrets import redact

log = logging.getLogger(__name__)

PARTITION_LABELS = ["flow", "topic", "partition"]
MM2_SOURCE_LABELS = ["source", "target", "topic", "partition"]
MM2_CHECKPOINT_LABELS = ["source", "target", "group", "topic", "partition"]
MM2_SOURCE = "kafka_connect_mirror_mirrorsourceconnector_"
MM2_CHECKPOINT = "kafka_connect_mirror_mirrorcheckpointconnector_"
LOOP_ANSWER_S = 5.0


class LoopSilent(Exception):
    """The coordinator's event loop did not run the request in time (or is gone)."""


Snapshot = Callable[[], EngineStatus]


class EngineCollector:
    def __init__(self, snapshot: Snapshot, loop: asyncio.AbstractEventLoop | None = None):
        self.snapshot = snapshot
        self.loop = loop  # None: take the snapshot on the calling thread (tests)

    def collect(self) -> Iterable[Metric]:
        yield from families(on_loop(self.loop, self.snapshot) if self.loop is not None else self.snapshot())


def families(engine: EngineStatus) -> list[Metric]:
    """Every metric family, from one snapshot."""
    result = _engine_families(engine) + _mm2_families(engine) + _health_families(engine)
    for family in result:
        # a label such as a stop reason quotes an error text, which must not carry a secret
        family.samples = [s._replace(labels={k: redact(v) for k, v in s.labels.items()}) for s in family.samples]
    return result


def _engine_families(engine: EngineStatus) -> list[Metric]:
    records = CounterMetricFamily("mirror_engine_records", "Records the target acknowledged",
                                  labels=PARTITION_LABELS)
    value_bytes = CounterMetricFamily("mirror_engine_value_bytes", "Value bytes the target acknowledged",
                                      labels=PARTITION_LABELS)
    replicated = GaugeMetricFamily("mirror_engine_last_replicated_offset",
                                   "Last source offset the target acknowledged", labels=PARTITION_LABELS)
    stored = GaugeMetricFamily("mirror_engine_stored_offset",
                               "Last source offset stored as progress", labels=PARTITION_LABELS)
    lag = GaugeMetricFamily("mirror_engine_lag_records",
                            "Source records not yet acknowledged by the target", labels=PARTITION_LABELS)
    in_flight = GaugeMetricFamily("mirror_engine_in_flight_records", "Records sent, not yet acknowledged",
                                  labels=PARTITION_LABELS)
    rate = GaugeMetricFamily("mirror_engine_value_bytes_per_second",
                             "Observed value bytes/s (used to balance workers)", labels=PARTITION_LABELS)
    filtered = CounterMetricFamily("mirror_engine_filtered_records", "Records a record filter dropped",
                                   labels=PARTITION_LABELS)
    resume_found = CounterMetricFamily(
        "mirror_engine_resume_duplicates_avoided_records",
        "Records a starting worker found already copied past the stored progress, and did not copy again",
        labels=PARTITION_LABELS)
    resume_unmatched = CounterMetricFamily(
        "mirror_engine_resume_unmatched_records",
        "Target records past the stored progress that a starting worker could not match to the source: "
        "copied again (duplicates), unless another producer wrote them", labels=PARTITION_LABELS)
    workers = GaugeMetricFamily("mirror_engine_workers", "Worker processes", labels=["flow"])
    restarts = CounterMetricFamily("mirror_engine_worker_restarts", "Worker processes restarted",
                                   labels=["flow"])
    stopped = GaugeMetricFamily("mirror_engine_stopped_topics", "Topics whose replication stopped",
                                labels=["flow", "topic", "reason"])
    looping = GaugeMetricFamily("mirror_engine_looping_topics",
                                "Topics a flow does not copy because the flows after it would copy them back "
                                "(an identity-policy cycle)", labels=["flow", "topic", "cycle"])
    stopped_partitions = GaugeMetricFamily(
        "mirror_engine_stopped_partitions", "Partitions stopped by an error of their own (retried at refresh)",
        labels=PARTITION_LABELS)
    verified = GaugeMetricFamily("mirror_engine_audit_verified_offset",
                                 "Newest source offset the sampling audit found copied unchanged",
                                 labels=PARTITION_LABELS)
    mismatches = CounterMetricFamily("mirror_engine_audit_mismatches", "Audit samples that differed",
                                     labels=["flow"])
    passes = CounterMetricFamily("mirror_engine_audit_passes", "Passes of the sampling audit", labels=["flow"])
    last_pass = GaugeMetricFamily("mirror_engine_audit_last_pass_timestamp_seconds",
                                  "When the sampling audit last finished a pass (Unix time)", labels=["flow"])
    for flow in engine.flows:
        name = flow.name
        if flow.audit is not None:
            for (topic, partition), offset in sorted(flow.audit.verified.items()):
                verified.add_metric([name, topic, str(partition)], offset)
            mismatches.add_metric([name], flow.audit.mismatches)
            passes.add_metric([name], flow.audit.passes)
            if flow.audit.last_pass_at is not None:
                last_pass.add_metric([name], flow.audit.last_pass_at)
        for state in flow.partitions:
            labels = [name, state.topic, str(state.partition)]
            records.add_metric(labels, state.records)
            value_bytes.add_metric(labels, state.value_bytes)
            replicated.add_metric(labels, state.last_acked_offset)
            stored.add_metric(labels, state.last_committed_offset)
            in_flight.add_metric(labels, state.in_flight)
            rate.add_metric(labels, state.bytes_per_s)
            filtered.add_metric(labels, state.filtered)
            resume_found.add_metric(labels, state.resume_found)
            resume_unmatched.add_metric(labels, state.resume_unmatched)
            if state.lag is not None:
                lag.add_metric(labels, state.lag)
        workers.add_metric([name], len(flow.workers))
        restarts.add_metric([name], sum(w.restarts for w in flow.workers))
        for topic, reason in sorted(flow.stopped_topics.items()):
            stopped.add_metric([name, topic, reason], 1)
        for topic, partition in sorted(flow.stopped_partitions):
            stopped_partitions.add_metric([name, topic, str(partition)], 1)
        for topic, cycle in sorted(flow.looping_topics.items()):
            looping.add_metric([name, topic, cycle], 1)
    heartbeats = CounterMetricFamily("mirror_engine_heartbeats_sent", "Heartbeats the target acknowledged",
                                     labels=["target"])
    for sent in engine.heartbeats_sent:
        heartbeats.add_metric([sent.target], sent.sent)
    return [records, value_bytes, filtered, resume_found, resume_unmatched, replicated, stored, lag, in_flight, rate,
            workers, restarts, stopped, looping, stopped_partitions, verified, mismatches, passes, last_pass,
            heartbeats]


def _mm2_families(engine: EngineStatus) -> list[Metric]:
    def gauge(prefix: str, name: str, text: str, labels: list[str]) -> GaugeMetricFamily:
        return GaugeMetricFamily(prefix + name, text, labels=labels)

    source = {
        "record_count": "Records the target acknowledged (MM2 record-count)",
        "record_rate": "Records the target acknowledged per second (MM2 record-rate)",
        "byte_count": "Value bytes of the records polled (MM2 byte-count)",
        "byte_rate": "Value bytes polled per second (MM2 byte-rate)",
    }
    for stat, what in (("record_age_ms", "now - record timestamp at poll"),
                       ("replication_latency_ms", "now - record timestamp at the target's ack")):
        source[stat] = f"{what}, last value (MM2 {stat.replace('_', '-')})"
        for suffix in ("min", "max", "avg"):
            source[f"{stat}_{suffix}"] = f"{what}, {suffix} over the window (MM2 {stat.replace('_', '-')}-{suffix})"
    source_families = {name: gauge(MM2_SOURCE, name, text, MM2_SOURCE_LABELS) for name, text in source.items()}
    checkpoint = {"checkpoint_latency_ms": "now - when the group's offsets were read, at the checkpoint's ack, "
                                           "last value (MM2 checkpoint-latency-ms)"}
    for suffix in ("min", "max", "avg"):
        checkpoint[f"checkpoint_latency_ms_{suffix}"] = f"checkpoint latency, {suffix} over the window"
    checkpoint_families = {name: gauge(MM2_CHECKPOINT, name, text, MM2_CHECKPOINT_LABELS)
                           for name, text in checkpoint.items()}
    for flow in engine.flows:
        for state in flow.partitions:
            labels = [flow.source, flow.target, state.remote_topic, str(state.partition)]
            values = {"record_count": state.record_count, "record_rate": state.record_rate,
                      "byte_count": state.byte_count, "byte_rate": state.byte_rate}
            for stat, window in (("record_age_ms", state.record_age_ms),
                                 ("replication_latency_ms", state.replication_latency_ms)):
                values[stat] = window.last
                values[f"{stat}_min"] = window.min
                values[f"{stat}_max"] = window.max
                values[f"{stat}_avg"] = window.avg
            for name, value in values.items():
                source_families[name].add_metric(labels, value)
        if flow.checkpoints is not None:
            for latency in flow.checkpoints.latencies:
                labels = [flow.source, flow.target, latency.group, latency.topic, str(latency.partition)]
                window = latency.latency_ms
                for name, value in (("checkpoint_latency_ms", window.last), ("checkpoint_latency_ms_min", window.min),
                                    ("checkpoint_latency_ms_max", window.max),
                                    ("checkpoint_latency_ms_avg", window.avg)):
                    checkpoint_families[name].add_metric(labels, value)
    return [*source_families.values(), *checkpoint_families.values()]


def _health_families(engine: EngineStatus) -> list[Metric]:
    alert_s = engine.heartbeat_alert_s
    ready = GaugeMetricFamily("mirror_engine_ready", "1 when every assigned partition is consumed and produced "
                                                     "(what /ready answers)")
    ready.add_metric([], 0 if health.not_ready(engine) else 1)
    worker_up = GaugeMetricFamily("mirror_engine_worker_up", "1 while the worker process runs and reports",
                                  labels=["flow", "worker"])
    report_age = GaugeMetricFamily("mirror_engine_worker_last_report_age_seconds",
                                   "Seconds since the worker's latest report", labels=["flow", "worker"])
    age = GaugeMetricFamily("mirror_engine_heartbeat_age_seconds",
                            "Now minus the timestamp of the newest heartbeat the flow copied", labels=["flow"])
    stale = GaugeMetricFamily("mirror_engine_heartbeat_stale",
                              f"1 when the heartbeat age passed {HEARTBEAT_ALERT_KEY}", labels=["flow"])
    threshold = GaugeMetricFamily("mirror_engine_heartbeat_alert_seconds",
                                  f"{HEARTBEAT_ALERT_KEY} (0: the alert is off)")
    threshold.add_metric([], alert_s)
    for flow in engine.flows:
        for worker in flow.workers:
            labels = [flow.name, str(worker.index)]
            worker_up.add_metric(labels, 1 if health.worker_up(worker.last_report_age_s, worker.alive) else 0)
            if worker.last_report_age_s is not None:
                report_age.add_metric(labels, worker.last_report_age_s)
        seconds = flow.heartbeat_age_s
        if seconds is not None:
            age.add_metric([flow.name], seconds)
            stale.add_metric([flow.name], 1 if health.is_stale(seconds, alert_s) else 0)
    return [ready, worker_up, report_age, age, stale, threshold]


def on_loop(loop: asyncio.AbstractEventLoop, job: Callable[[], Any], timeout_s: float | None = None) -> Any:
    """Runs job on the event loop's thread and returns its result; LoopSilent when it does not."""
    timeout_s = LOOP_ANSWER_S if timeout_s is None else timeout_s
    try:
        if asyncio.get_running_loop() is loop:
            return job()  # already on it: waiting for it would block it
    except RuntimeError:
        pass  # no loop runs on this thread: the HTTP server's
    result: concurrent.futures.Future = concurrent.futures.Future()

    def run() -> None:
        try:
            result.set_result(job())
        except BaseException as error:  # handed to the waiting thread
            result.set_exception(error)

    try:
        loop.call_soon_threadsafe(run)
        return result.result(timeout_s)
    except (RuntimeError, concurrent.futures.TimeoutError) as error:  # a closed loop, or a busy one
        raise LoopSilent(f"the coordinator's event loop did not answer within {timeout_s:.0f}s") from error


def _redacted(value: Any) -> Any:
    """A JSON document with every text redacted and NaN as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(str(k)): _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


class EndpointServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], snapshot: Snapshot, loop: asyncio.AbstractEventLoop):
        super().__init__(address, _Handler)
        self.snapshot = snapshot
        self.loop = loop
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(EngineCollector(snapshot, loop))
        self.history = History()  # the status page's charts
        self.stopped = threading.Event()

    def shutdown(self) -> None:
        self.stopped.set()
        super().shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: EndpointServer

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        path = urlsplit(self.path).path.rstrip("/") or "/"
        try:
            if path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(self.server.registry))
            elif path == "/health":
                on_loop(self.server.loop, lambda: True)
                self._json(200, {"alive": True})
            elif path == "/ready":
                reasons = health.not_ready(on_loop(self.server.loop, self.server.snapshot))
                self._json(503 if reasons else 200, {"ready": not reasons, "not_ready": reasons})
            elif path == "/status":
                self._json(200, health.status(on_loop(self.server.loop, self.server.snapshot)))
            elif path == "/":
                engine = on_loop(self.server.loop, self.server.snapshot)
                self.server.history.record(engine, time.monotonic())
                self._send(200, "text/html; charset=utf-8", page.render(engine, self.server.history).encode())
            else:
                self._json(404, {"error": f"no such endpoint {path}; try /, /metrics, /health, /ready or /status"})
        except LoopSilent as error:
            self._json(503, {"alive": False, "ready": False, "error": str(error)})

    def _json(self, code: int, document: dict[str, Any]) -> None:
        body = json.dumps(_redacted(document), ensure_ascii=False).encode()
        self._send(code, "application/json", body)

    def _send(self, code: int, content_type: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's name)
        pass  # a scrape every few seconds is no log line


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(snapshot: Snapshot, listen: str) -> EndpointServer:
    """Starts the endpoint from the coordinator's loop; `snapshot()` takes the engine's snapshot on
    that loop. Returns the server (its port may have been chosen by the OS); shutdown() stops it."""
    host, port = parse_listen(METRICS_LISTEN_KEY, listen)
    try:
        server = EndpointServer((host, port), snapshot, asyncio.get_running_loop())
    except OSError as error:
        raise ConfigError(METRICS_LISTEN_KEY, f"cannot listen on {listen}: {error.strerror}") from None
    threading.Thread(target=server.serve_forever, daemon=True, name="metrics-endpoint").start()
    sample = lambda: on_loop(server.loop, snapshot)  # noqa: E731
    threading.Thread(target=server.history.sample_forever, args=(sample, server.stopped), daemon=True,
                     name="status-history").start()
    log.info("metrics on http://%s:%d/metrics (also /health, /ready, /status; the status page at /)", host,
             server.server_port)
    if not _is_loopback(host):
        log.warning("%s = %s: the metrics endpoint is reachable from other hosts; it has no authentication",
                    METRICS_LISTEN_KEY, listen)
    return server
