"""Every metric the Grafana dashboard and the Prometheus alert rules under deploy/ name is served by a
running engine's /metrics (a counter as `<name>_total`)."""

from __future__ import annotations

import re
import time
from pathlib import Path

from tests.helpers import http_get, wait_for
from tests.integration.kafka_io import Record, end_offsets, mm2_properties, produce

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
MONITORING_FILES = [DEPLOY / "grafana" / "mirror-engine-dashboard.json",
                    DEPLOY / "prometheus" / "mirror-engine.rules.yml"]
METRIC = re.compile(r"\b(?:mirror_engine|kafka_connect_mirror)_\w+")


def served_names(exposition: str) -> set[str]:
    """The sample names a scrape can hold: each family's name from its TYPE line, also for a family with
    no sample yet (such as stopped partitions); the text format names a counter's family `<name>_total`."""
    return set(re.findall(r"^# TYPE (\S+) \S+$", exposition, re.M))


def test_a_counter_is_served_as_its_total():
    assert served_names("# HELP x_records_total h\n# TYPE x_records_total counter\n# TYPE x_lag gauge\n") == {
        "x_records_total", "x_lag"}


def test_every_metric_of_the_dashboard_and_the_alerts_is_served(source_cluster, target_cluster, engine,
                                                                 unique_name):
    topic = source_cluster.create_topic(unique_name("scraped"), 2)
    produce(source_cluster.bootstrap_servers, topic,
            [Record(i % 2, b"k%d" % i, b"v", (), int(time.time() * 1000)) for i in range(20)])
    run = engine(mm2_properties(source_cluster, target_cluster, {
        "A->B.topics": topic, "mirror.engine.audit.interval.seconds": "1"}))
    wait_for(lambda: sum(end_offsets(target_cluster.bootstrap_servers, f"A.{topic}").values()) == 20, 60,
             "the copy of 20 records", run.log)
    wait_for(lambda: "metrics on http" in run.log(), 30, "the metrics endpoint", run.log)
    # the per-partition families carry samples once the workers reported the copy
    copied = rf'^mirror_engine_records_total{{flow="A->B",partition="\d",topic="{re.escape(topic)}"}} 10\.0$'
    exposition = wait_for(lambda: (lambda s: s if len(re.findall(copied, s, re.M)) == 2 else "")(
        http_get(run.metrics_url())[1]), 30, "both partitions' records in /metrics",
        lambda: http_get(run.metrics_url())[1][-3000:])

    served = served_names(exposition)
    for file in MONITORING_FILES:
        used = set(METRIC.findall(file.read_text()))
        assert used, file
        assert sorted(used - served) == [], f"{file.name} names metrics the engine does not serve"
    assert run.stop() == 0, run.log()
