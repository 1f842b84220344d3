"""What a running engine tells about itself: MM2's metrics per partition, /health and /ready,
the heartbeat age and its alert, `mirror-engine status`, JSON logs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from confluent_kafka import KafkaException

from tests.helpers import http_get, wait_for
from tests.integration.kafka_io import Record, end_offsets, mm2_properties, produce
from tests.integration.test_bad_input import skip
from tests.integration.test_checkpoints import commit

SOURCE = "kafka_connect_mirror_mirrorsourceconnector_"
CHECKPOINT = "kafka_connect_mirror_mirrorcheckpointconnector_"


def base_url(run) -> str:
    wait_for(lambda: "metrics on http" in run.log(), 60, "the engine's endpoint", run.log)
    return run.metrics_url().removesuffix("/metrics")


def metric(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def scrape(run) -> str:
    code, text = http_get(f"{base_url(run)}/metrics")
    assert code == 200, text
    return text


def ready(run) -> tuple[bool, list[str]]:
    code, body = http_get(f"{base_url(run)}/ready")
    document = json.loads(body)
    assert (code == 200) == document["ready"], (code, body)
    return document["ready"], document["not_ready"]


def committed(cluster, group: str, topic: str, positions: dict[int, int]) -> bool:
    """Commits a group's positions; False while the group coordinator is not ready (a fresh cluster)."""
    try:
        commit(cluster.bootstrap_servers, group, topic, positions)
    except KafkaException as error:
        if not error.args[0].retriable():
            raise
        return False
    return True


def status_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", "status", *args], capture_output=True, text=True,
                          timeout=60, check=False)


def test_mm2_metrics_per_partition_health_ready_and_status(source_cluster, target_cluster, engine, unique_name,
                                                           tmp_path):
    topic = source_cluster.create_topic(unique_name("metrics"), 3)
    remote = f"A.{topic}"
    group = unique_name("group")
    test_started_ms = int(time.time() * 1000)
    written_at = test_started_ms - 2_000  # known timestamps, two seconds old when produced
    records = [Record(i % 3, f"k{i}".encode(), None if i % 10 == 0 else b"v" * (i % 50), (("h", b"x"),),
                      written_at + i % 7) for i in range(900)]
    produce(source_cluster.bootstrap_servers, topic, records)
    wait_for(lambda: committed(source_cluster, group, topic, {0: 100, 1: 200, 2: 300}), 60, "the group's commit")
    properties = mm2_properties(source_cluster, target_cluster, {
        "A->B.topics": topic, "groups": group, "emit.checkpoints.interval.seconds": "1",
        "mirror.engine.heartbeat.alert.seconds": "30"})
    run = engine(properties)
    wait_for(lambda: ready(run)[0], 60, "/ready to say ready", run.log)
    assert http_get(f"{base_url(run)}/health") == (200, '{"alive": true}')

    expected = {p: [r for r in records if r.partition == p] for p in range(3)}
    tags = {"source": "A", "target": "B", "topic": remote}

    def counted() -> bool:
        text = scrape(run)
        return all(metric(text, SOURCE + "record_count", partition=str(p), **tags) == len(expected[p])
                   for p in range(3))

    wait_for(counted, 60, "record-count of every partition", lambda: scrape(run)[-3000:] + run.log())
    text = scrape(run)  # at once: the windows keep a value for 60 s after it was recorded
    elapsed_ms = time.time() * 1000 - written_at  # no latency can be longer than the records' age now
    for partition, mine in expected.items():
        labels = {"partition": str(partition), **tags}
        # byte-count: value bytes only, a null value counts 0
        assert metric(text, SOURCE + "byte_count", **labels) == sum(len(r.value or b"") for r in mine)
        assert metric(text, "mirror_engine_records_total", flow="A->B", topic=topic, partition=str(partition)) \
            == len(mine)
        assert metric(text, SOURCE + "record_rate", **labels) > 0
        assert metric(text, SOURCE + "byte_rate", **labels) > 0
        for stat in ("record_age_ms", "replication_latency_ms"):
            low, avg, high = (metric(text, f"{SOURCE}{stat}_{s}", **labels) for s in ("min", "avg", "max"))
            last = metric(text, SOURCE + stat, **labels)
            # the records were written 2 s before they were produced: every age is at least that
            assert 2_000 <= low <= avg <= high <= elapsed_ms, (stat, low, avg, high, elapsed_ms)
            assert low <= last <= high
        # a record is acknowledged after it was polled
        assert metric(text, SOURCE + "replication_latency_ms_max", **labels) \
            >= metric(text, SOURCE + "record_age_ms_min", **labels)
    assert metric(text, "mirror_engine_worker_up", flow="A->B") == 1
    assert "mirror_engine_ready 1.0" in text
    wait_for(lambda: metric(scrape(run), CHECKPOINT + "checkpoint_latency_ms_max", group=group, topic=remote,
                            partition="2") is not None, 60, "a checkpoint's latency", run.log)
    text = scrape(run)
    latency = metric(text, CHECKPOINT + "checkpoint_latency_ms_max", group=group, topic=remote, partition="2",
                     source="A", target="B")
    assert 0 <= latency <= time.time() * 1000 - test_started_ms
    # heartbeats (B->A beats in A's heartbeats topic) are copied with the flow: a fresh age
    wait_for(lambda: (metric(scrape(run), SOURCE + "record_count", topic="A.heartbeats", partition="0") or 0) > 0, 60,
             "heartbeats copied", run.log)
    age = metric(scrape(run), "mirror_engine_heartbeat_age_seconds", flow="A->B")
    assert 0 <= age < 30 and metric(scrape(run), "mirror_engine_heartbeat_stale", flow="A->B") == 0

    done = status_command("--url", base_url(run))
    assert done.returncode == 0, done.stdout + done.stderr
    screen = done.stdout
    assert screen.splitlines()[0].endswith(": READY"), screen
    row = next(line for line in screen.splitlines() if line.startswith("A->B ")).split()
    # 3 partitions and the heartbeats one; the flow's lag may hold a beat emitted a moment ago (one a
    # second), the data topic's none
    assert int(row[1]) >= 4 and int(row[2]) <= 1, screen
    assert f"  {topic} -> {remote}: 3 partitions, lag 0," in screen, screen
    # a placement by observed rates may be moving a partition between the workers: 1 or more each
    assert re.search(r"  workers: 0 pid \d+ \(\d+ partitions?, 0 restarts, reported [\d.]+s ago\)", screen), screen
    # the config file's listen address is 127.0.0.1:0 here: the command says to give --url
    config_file = tmp_path / "mm2.properties"
    config_file.write_text(properties)
    refused = status_command(str(config_file))
    assert refused.returncode == 2 and "the port is chosen at start; give --url" in refused.stderr
    assert run.stop() == 0, run.log()
    assert "stopping" in run.log()


def test_ready_turns_false_for_a_stopped_partition_and_a_worker_that_is_dead_or_silent(
        source_cluster, target_cluster, engine, unique_name, tmp_path):
    topic = source_cluster.create_topic(unique_name("unready"), 2)
    small = [Record(0, f"s{i}".encode(), b"s" * 100, (), 0) for i in range(50)]
    big = Record(0, b"big", b"x" * 20_000, (), 0)
    others = [Record(1, f"o{i}".encode(), b"o", (), 0) for i in range(50)]
    produce(source_cluster.bootstrap_servers, topic, small + [big] + others)
    properties = mm2_properties(source_cluster, target_cluster, {
        "A->B.topics": topic, "A->B.target.topic.config.max.message.bytes": "10000", "tasks.max": "1",
        "emit.heartbeats.enabled": "false", "mirror.engine.worker.timeout.ms": "600000"})
    run = engine(properties)
    url = base_url(run)

    # a record the target refuses stops its partition: not ready, and the reason names it
    reasons = wait_for(lambda: [r for r in ready(run)[1] if f"{topic}[0] stopped" in r], 60,
                       "/ready to name the stopped partition", run.log)
    assert "too large" in reasons[0] or "Message size" in reasons[0], reasons
    assert metric(scrape(run), "mirror_engine_stopped_partitions", topic=topic, partition="0") == 1
    assert "mirror_engine_ready 0.0" in scrape(run)
    done = status_command("--url", url)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"  STOPPED {topic}[0]: " in done.stdout and "NOT READY" in done.stdout.splitlines()[0]
    config_file = tmp_path / "mm2.properties"
    config_file.write_text(properties)
    skip(config_file, topic, 0, len(small))
    wait_for(lambda: ready(run)[0], 60, "ready again after the skip (the partition retried at refresh)", run.log)
    wait_for(lambda: end_offsets(target_cluster.bootstrap_servers, f"A.{topic}") == {0: 50, 1: 50}, 60, "the copy",
             run.log)

    # a worker that stops reporting (hung): not ready while it is silent
    (pid,) = run.worker_pids().values()
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(lambda: any("worker 0" in r and "silent for" in r for r in ready(run)[1]), 60,
                 "/ready to name the silent worker", run.log)
        assert metric(scrape(run), "mirror_engine_worker_up", flow="A->B", worker="0") == 0
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(lambda: ready(run)[0], 60, "ready again when the worker reports", run.log)

    # a dead worker: not ready until its replacement has reported
    restarts = metric(scrape(run), "mirror_engine_worker_restarts_total", flow="A->B")  # 1: the refused record
    seen: list[list[str]] = []

    def unready_seen() -> bool:
        state, why = ready(run)
        if not state:
            seen.append(why)
        return bool(seen) and state

    os.kill(pid, signal.SIGKILL)
    wait_for(unready_seen, 60, "not ready while the worker restarts, then ready", run.log, interval_s=0.02)
    assert any("worker 0" in r for why in seen for r in why), seen
    assert metric(scrape(run), "mirror_engine_worker_restarts_total", flow="A->B") == restarts + 1
    assert run.stop() == 0, run.log()


def test_heartbeat_age_and_the_stale_alert_with_json_logs(source_cluster, target_cluster, engine, unique_name,
                                                          tmp_path):
    topic = source_cluster.create_topic(unique_name("beats"), 1)
    produce(source_cluster.bootstrap_servers, topic, [Record(0, b"k", b"v", (), int(time.time() * 1000))])
    beating = mm2_properties(source_cluster, target_cluster, {
        "A->B.topics": topic, "mirror.engine.heartbeat.alert.seconds": "20"})
    run = engine(beating)
    wait_for(lambda: (metric(scrape(run), SOURCE + "record_count", topic="A.heartbeats", partition="0") or 0) > 0, 60,
             "heartbeats copied", run.log)
    text = scrape(run)
    assert metric(text, "mirror_engine_heartbeat_age_seconds", flow="A->B") < 20
    assert metric(text, "mirror_engine_heartbeat_stale", flow="A->B") == 0
    assert "mirror_engine_heartbeat_alert_seconds 20.0" in text
    assert run.stop() == 0, run.log()

    # no more heartbeats: the newest copied beat ages past the threshold
    silent = mm2_properties(source_cluster, target_cluster, {
        "A->B.topics": topic, "emit.heartbeats.enabled": "false", "mirror.engine.heartbeat.alert.seconds": "2"})
    config_file = tmp_path / "silent.properties"
    config_file.write_text(silent)
    log_file = tmp_path / "json.log"
    with open(log_file, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "engine", "--log-format", "json", "run", str(config_file)],
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def lines() -> list[dict]:
        """The log's complete lines so far, each parsed (one being written is left for later)."""
        text = log_file.read_text()
        return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines()]

    try:
        address = wait_for(lambda: next((line["message"].split()[2] for line in lines()
                                         if line["message"].startswith("metrics on http")), None), 60,
                           "the endpoint's address in the JSON log", log_file.read_text)
        url = address.removesuffix("/metrics")
        wait_for(lambda: metric(http_get(f"{url}/metrics")[1], "mirror_engine_heartbeat_stale", flow="A->B") == 1, 60,
                 "the stale alert", log_file.read_text)
        assert metric(http_get(f"{url}/metrics")[1], "mirror_engine_heartbeat_age_seconds", flow="A->B") > 2
        done = status_command("--url", url)
        assert "STALE " in done.stdout and "heartbeat stale: newest copied " in done.stdout, done.stdout
        # staleness is an alert, not unreadiness
        wait_for(lambda: json.loads(http_get(f"{url}/ready")[1])["ready"], 60, "ready", log_file.read_text)
        wait_for(lambda: any(line["process"] == "worker" for line in lines()), 60, "a worker's JSON line",
                 log_file.read_text)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 0, log_file.read_text()[-5000:]
    parsed = lines()  # every line of the coordinator and its workers is one JSON object
    assert {line["process"] for line in parsed} == {"coordinator", "worker"}
    assert all({"ts", "level", "pid", "logger", "message"} <= line.keys() for line in parsed)
    assert Path(log_file).read_text().count("\n") == len(parsed)
