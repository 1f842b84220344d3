"""Prometheus endpoint of the coordinator: the workers' reports, aggregated per partition.

Served on 127.0.0.1 unless `mirror.engine.metrics.listen` says otherwise. MM2-named metrics
(record-count, replication-latency-ms, ...) come with the drop-in work; these are the engine's own.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Iterable

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from engine.config import METRICS_LISTEN_KEY, ConfigError, parse_listen
from engine.security.secrets import redact

if TYPE_CHECKING:
    from engine.coordinator.coordinator import Coordinator

log = logging.getLogger(__name__)

PARTITION_LABELS = ["flow", "topic", "partition"]


class EngineCollector:
    def __init__(self, coordinator: "Coordinator"):
        self.coordinator = coordinator

    def collect(self) -> Iterable[Metric]:
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
        workers = GaugeMetricFamily("mirror_engine_workers", "Worker processes", labels=["flow"])
        restarts = CounterMetricFamily("mirror_engine_worker_restarts", "Worker processes restarted",
                                       labels=["flow"])
        stopped = GaugeMetricFamily("mirror_engine_stopped_topics", "Topics whose replication stopped",
                                    labels=["flow", "topic", "reason"])
        stopped_partitions = GaugeMetricFamily(
            "mirror_engine_stopped_partitions", "Partitions stopped by an error of their own (retried at refresh)",
            labels=PARTITION_LABELS)
        verified = GaugeMetricFamily("mirror_engine_audit_verified_offset",
                                     "Newest source offset the sampling audit found copied unchanged",
                                     labels=PARTITION_LABELS)
        mismatches = CounterMetricFamily("mirror_engine_audit_mismatches", "Audit samples that differed",
                                         labels=["flow"])
        for flow in self.coordinator.flows:
            name = flow.flow.name
            if flow.auditor is not None:
                for (topic, partition), offset in sorted(flow.auditor.verified.items()):
                    verified.add_metric([name, topic, str(partition)], offset)
                mismatches.add_metric([name], flow.auditor.mismatches)
            for (topic, partition), state in sorted(flow.partition_state.items()):
                labels = [name, topic, str(partition)]
                records.add_metric(labels, state.records)
                value_bytes.add_metric(labels, state.value_bytes)
                replicated.add_metric(labels, state.last_acked_offset)
                stored.add_metric(labels, state.last_committed_offset)
                in_flight.add_metric(labels, state.in_flight)
                rate.add_metric(labels, state.bytes_per_s)
                filtered.add_metric(labels, state.filtered)
                if state.source_end_offset >= 0:
                    lag.add_metric(labels, max(0, state.source_end_offset - state.last_acked_offset - 1))
            workers.add_metric([name], len(flow.workers))
            restarts.add_metric([name], sum(w.restarts for w in flow.workers))
            for topic, reason in sorted(flow.stopped_topics.items()):
                stopped.add_metric([name, topic, reason], 1)
            for topic, partition in sorted(flow.stopped_partitions):
                stopped_partitions.add_metric([name, topic, str(partition)], 1)
        heartbeats = CounterMetricFamily("mirror_engine_heartbeats_sent", "Heartbeats the target acknowledged",
                                         labels=["target"])
        for emitter in self.coordinator.heartbeat_emitters:
            heartbeats.add_metric([emitter.target.alias], emitter.sent)
        for family in (records, value_bytes, filtered, replicated, stored, lag, in_flight, rate, workers, restarts,
                       stopped, stopped_partitions, verified, mismatches, heartbeats):
            # a label such as a stop reason quotes an error text, which must not carry a secret
            family.samples = [s._replace(labels={k: redact(v) for k, v in s.labels.items()}) for s in family.samples]
            yield family


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(coordinator: "Coordinator", listen: str):
    """Starts the endpoint; returns the HTTP server (its port may have been chosen by the OS)."""
    host, port = parse_listen(METRICS_LISTEN_KEY, listen)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EngineCollector(coordinator))
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as error:
        raise ConfigError(METRICS_LISTEN_KEY, f"cannot listen on {listen}: {error.strerror}") from None
    log.info("metrics on http://%s:%d/metrics", host, server.server_port)
    if not _is_loopback(host):
        log.warning("%s = %s: the metrics endpoint is reachable from other hosts; it has no authentication",
                    METRICS_LISTEN_KEY, listen)
    return server
