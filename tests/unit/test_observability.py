"""Readiness, the heartbeat alert, the HTTP endpoint and `mirror-engine status`, on a coordinator
made of plain objects (no broker, no worker process)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from types import SimpleNamespace

import pytest

from engine import health, ipc, status
from engine.config.loading import from_properties
from engine.config.model import HEARTBEAT_ALERT_KEY, FlowConfig
from engine.config.values import ConfigError
from engine.coordinator.statistics import PartitionState
from engine.policy import make_policy
from engine.windows import CheckpointLatencies
from tests.helpers import http_get


def task(topic: str, partition: int) -> ipc.PartitionTask:
    return ipc.PartitionTask(topic, partition, f"A.{topic}", apply_filter=topic != "heartbeats")


def report(*keys: tuple[str, int]) -> ipc.Report:
    return ipc.Report(0, 1.0, [ipc.PartitionProgress(t, p, 0, 0, 0, 0, 0, 0, 1) for t, p in keys])


def worker(index: int, tasks: list[ipc.PartitionTask], reported=None, alive=True, heard_s_ago=0.5):
    return SimpleNamespace(
        assignment=SimpleNamespace(worker_index=index, partitions=tasks), alive=alive, pid=1000 + index,
        restarts=0, last_report=report(*reported) if reported is not None else None,
        last_report_at=None if reported is None else time.monotonic() - heard_s_ago)


def flow_runner(tasks: list[ipc.PartitionTask], workers: list) -> SimpleNamespace:
    flow = FlowConfig("A", "B")
    return SimpleNamespace(
        flow=flow, partitions=tasks, workers=workers, partition_state={}, stopped_partitions={}, stopped_topics={},
        looping_topics={},
        policy=make_policy(flow.policy_class, "A", flow.separator, flow.internal_separator_enabled),
        target=SimpleNamespace(alias="B"), auditor=None, audit_passes=0, audit_last_pass_at=None,
        checkpoints=None, started_at_ms=time.time() * 1000 - 5_000, membership=None)


def coordinator(*flows, running=True, alert_s=60.0) -> SimpleNamespace:
    return SimpleNamespace(flows=list(flows), running=running, stopping=asyncio.Event(), heartbeat_emitters=[],
                           heartbeat_alert_s=alert_s, started_at=time.monotonic() - 65)


def ready_flow():
    tasks = [task("orders", 0), task("orders", 1), task("heartbeats", 0)]
    return flow_runner(tasks, [worker(0, tasks, reported=[(t.topic, t.partition) for t in tasks])])


def test_the_heartbeat_alert_threshold_key():
    base = {"clusters": "A, B", "A.bootstrap.servers": "a:1", "B.bootstrap.servers": "b:1", "A->B.enabled": "true"}
    assert from_properties(base).heartbeat_alert_s == 60.0
    assert from_properties({**base, HEARTBEAT_ALERT_KEY: " 2.5 "}).heartbeat_alert_s == 2.5
    for bad in ("soon", "-1", "nan"):
        with pytest.raises(ConfigError, match=HEARTBEAT_ALERT_KEY):
            from_properties({**base, HEARTBEAT_ALERT_KEY: bad})


def test_ready_only_when_started_and_every_partition_is_consumed_and_produced():
    flow = ready_flow()
    assert health.not_ready(coordinator(flow)) == []
    assert health.not_ready(coordinator(flow, running=False)) == [
        "starting: creating remote topics and starting workers"]
    stopping = coordinator(flow)
    stopping.stopping.set()
    assert health.not_ready(stopping) == ["stopping"]


@pytest.mark.parametrize("change, reason", [
    (lambda f: setattr(f.workers[0], "alive", False), "A->B worker 0 is not running (restarts so far: 0)"),
    (lambda f: setattr(f.workers[0], "last_report_at", time.monotonic() - 11),
     "A->B worker 0 (pid 1000) silent for 11s"),
    (lambda f: setattr(f.workers[0], "last_report", None),
     "A->B worker 0 (pid 1000) has not reported since it started"),
    (lambda f: setattr(f.workers[0], "last_report", report(("orders", 0))),
     "A->B worker 0 has not taken on heartbeats[0], orders[1] yet"),
    (lambda f: f.stopped_partitions.update({("orders", 1): "target refused orders[1]@300"}),
     "A->B orders[1] stopped: target refused orders[1]@300"),
    (lambda f: f.stopped_topics.update({"big": "remote topic cannot be created"}),
     "A->B big stopped: remote topic cannot be created"),
    (lambda f: f.partition_state.update(
        {("orders", 0): PartitionState(in_flight=7, waiting_since=time.monotonic() - 31)}),
     "A->B orders[0]: 7 records in flight, none acknowledged by cluster B for 31s"),
])
def test_each_readiness_condition_names_what_fails(change, reason):
    flow = ready_flow()
    change(flow)
    assert health.not_ready(coordinator(flow)) == [reason]


def test_deleted_source_topics_and_short_waits_keep_it_ready():
    flow = ready_flow()
    flow.stopped_topics["gone"] = "source topic deleted"
    flow.partition_state[("orders", 0)] = PartitionState(in_flight=7, waiting_since=time.monotonic() - 3)
    assert health.not_ready(coordinator(flow)) == []


def test_heartbeat_age_from_the_newest_copied_beat_or_since_the_start():
    now_ms = time.time() * 1000
    flow = ready_flow()
    # no beat copied yet: the time since the flow started
    assert health.heartbeat_age_s(flow, now_ms) == pytest.approx(5.0, abs=0.5)
    flow.partition_state[("heartbeats", 0)] = PartitionState(newest_acked_timestamp_ms=int(now_ms) - 1_500)
    assert health.heartbeat_age_s(flow, now_ms) == pytest.approx(1.5, abs=0.01)
    assert not health.is_stale(1.5, 60) and health.is_stale(75, 60) and not health.is_stale(75, 0)
    no_beats = flow_runner([task("orders", 0)], [])
    assert health.heartbeat_age_s(no_beats, now_ms) is None and not health.is_stale(None, 60)


@pytest.fixture
def endpoint():
    """serve() on a loop of its own thread; yields (base url, coordinator, loop)."""
    from engine.metrics import serve

    flow = ready_flow()
    state = PartitionState(records=3, value_bytes=30, last_acked_offset=2, source_end_offset=10, in_flight=1)
    state.mm2.record(time.monotonic() * 1000, ipc.PartitionProgress(
        "orders", 0, 2, 2, 3, 30, 0, 1, 10, polled_value_bytes_delta=36,
        record_age=ipc.Timings(3, 30, 5, 15, 15), replication_latency=ipc.Timings(3, 60, 10, 30, 30)))
    flow.partition_state[("orders", 0)] = state
    flow.partition_state[("heartbeats", 0)] = PartitionState(newest_acked_timestamp_ms=int(time.time() * 1000) - 90_000)
    flow.checkpoints = SimpleNamespace(latency=CheckpointLatencies(), written=4)
    flow.checkpoints.latency.record(("group-1", "A.orders", 0), time.monotonic() * 1000, 25)
    engine = coordinator(flow)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start():
        return serve(engine, "127.0.0.1:0")

    server = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    yield f"http://127.0.0.1:{server.server_port}", engine, loop
    server.shutdown()
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def test_metrics_carry_mm2_names_and_tags_next_to_the_engines_own(endpoint):
    base, _engine, _loop = endpoint
    code, text = http_get(f"{base}/metrics")
    assert code == 200
    tags = 'partition="0",source="A",target="B",topic="A.orders"'
    for line in (f"kafka_connect_mirror_mirrorsourceconnector_record_count{{{tags}}} 3.0",
                 f"kafka_connect_mirror_mirrorsourceconnector_byte_count{{{tags}}} 36.0",
                 f"kafka_connect_mirror_mirrorsourceconnector_record_age_ms_max{{{tags}}} 15.0",
                 f"kafka_connect_mirror_mirrorsourceconnector_record_age_ms_avg{{{tags}}} 10.0",
                 f"kafka_connect_mirror_mirrorsourceconnector_replication_latency_ms_avg{{{tags}}} 20.0",
                 f"kafka_connect_mirror_mirrorsourceconnector_replication_latency_ms_max{{{tags}}} 30.0",
                 f"kafka_connect_mirror_mirrorsourceconnector_replication_latency_ms{{{tags}}} 30.0",
                 'kafka_connect_mirror_mirrorcheckpointconnector_checkpoint_latency_ms_max{group="group-1",'
                 'partition="0",source="A",target="B",topic="A.orders"} 25.0',
                 'mirror_engine_records_total{flow="A->B",partition="0",topic="orders"} 3.0',
                 'mirror_engine_lag_records{flow="A->B",partition="0",topic="orders"} 7.0',
                 'mirror_engine_heartbeat_stale{flow="A->B"} 1.0',
                 "mirror_engine_heartbeat_alert_seconds 60.0",
                 "mirror_engine_ready 1.0",
                 'mirror_engine_worker_up{flow="A->B",worker="0"} 1.0'):
        assert line in text, line
    rate = float(text.split(f"kafka_connect_mirror_mirrorsourceconnector_record_rate{{{tags}}} ")[1].split()[0])
    assert rate == pytest.approx(3 / 30, rel=0.05)  # Kafka's Rate pads the first window to 30 s
    # the heartbeats partition's own latency window is empty: NaN, as Kafka's stats say
    assert ('kafka_connect_mirror_mirrorsourceconnector_replication_latency_ms_avg{partition="0",source="A",'
            'target="B",topic="A.heartbeats"} NaN') in text
    age = float(text.split('mirror_engine_heartbeat_age_seconds{flow="A->B"} ')[1].split()[0])
    assert 89 < age < 120


def test_health_ready_and_status_answer_from_the_loop(endpoint):
    base, engine, loop = endpoint
    assert http_get(f"{base}/health") == (200, '{"alive": true}')
    assert http_get(f"{base}/ready") == (200, '{"ready": true, "not_ready": []}')
    engine.flows[0].stopped_partitions[("orders", 1)] = "target refused orders[1]@300 (too large)"
    code, body = http_get(f"{base}/ready")
    assert code == 503 and json.loads(body) == {
        "ready": False, "not_ready": ["A->B orders[1] stopped: target refused orders[1]@300 (too large)"]}
    code, body = http_get(f"{base}/status")
    document = json.loads(body)
    assert code == 200 and document["ready"] is False
    flow = document["flows"][0]
    assert (flow["flow"], flow["partitions"], flow["lag"], flow["records"]) == ("A->B", 3, 7, 3)
    assert flow["replication_latency_ms_avg"] == 20.0 and flow["replication_latency_ms_max"] == 30.0
    assert flow["heartbeat"]["stale"] is True and flow["checkpoints_written"] == 4
    assert flow["stopped_partitions"] == [{"topic": "orders", "partition": 1,
                                           "reason": "target refused orders[1]@300 (too large)"}]
    assert http_get(f"{base}/nothing")[0] == 404
    # a loop that does not answer: not alive, and /metrics fails rather than show stale values
    blocked = threading.Event()
    loop.call_soon_threadsafe(lambda: blocked.wait(8))
    from engine import metrics

    original = metrics.LOOP_ANSWER_S
    metrics.LOOP_ANSWER_S = 0.5
    try:
        code, body = http_get(f"{base}/health")
        assert code == 503 and json.loads(body)["alive"] is False
    finally:
        metrics.LOOP_ANSWER_S = original
        blocked.set()


def test_the_status_screen(endpoint):
    base, engine, _loop = endpoint
    engine.flows[0].stopped_partitions[("orders", 1)] = "target refused orders[1]@300 (too large)"
    document = status.fetch(base)
    screen = status.render(document, base)
    lines = screen.splitlines()
    assert lines[0].startswith("mirror-engine ") and lines[0].endswith(": NOT READY") and "up 1m05s" in lines[0]
    header = next(line for line in lines if line.startswith("FLOW"))
    row = lines[lines.index(header) + 1].split()
    assert row[:3] == ["A->B", "3", "7"] and row[5:8] == ["20", "/", "30"] and row[-3:] == ["0", "STALE", row[-1]]
    assert "  workers: 0 pid 1000 (3 partitions, 0 restarts, reported " in screen
    assert "  orders -> A.orders: 2 partitions, lag 7" in screen
    assert "  STOPPED orders[1]: target refused orders[1]@300 (too large)" in screen
    assert "  heartbeat stale: newest copied 1m3" in screen and "(alert after 60s)" in screen
    assert "not ready because:\n  - A->B orders[1] stopped: target refused" in screen


def test_the_status_screen_of_an_instance_in_a_group(endpoint):
    base, engine, _loop = endpoint
    engine.flows[0].membership = SimpleNamespace(group_id="mirrors", target=SimpleNamespace(alias="B"), joined=True,
                                                 leads=lambda: True, healthy=lambda: False)
    document = status.fetch(base)
    assert document["flows"][0]["group"] == {"id": "mirrors", "cluster": "B", "joined": True, "leader": True,
                                             "healthy": False}
    assert document["flows"][0]["partitions_here"] == [["heartbeats", 0], ["orders", 0], ["orders", 1]]
    assert "  group mirrors on cluster B: 3 of 3 partitions here, leading it, MEMBERSHIP NOT CONFIRMED " \
           "(copying paused)" in status.render(document, base)


def test_where_status_looks_for_the_engine(tmp_path):
    assert status.endpoint_url("127.0.0.1:9999/metrics", None) == "http://127.0.0.1:9999"
    assert status.endpoint_url(None, None) == "http://127.0.0.1:9464"
    config = tmp_path / "mm2.properties"
    config.write_text("clusters = A, B\nmirror.engine.metrics.listen = 0.0.0.0:9555\n")
    assert status.endpoint_url(None, str(config)) == "http://127.0.0.1:9555"
    config.write_text("mirror.engine.metrics.listen = 127.0.0.1:0\n")
    with pytest.raises(status.StatusUnavailable, match="the port is chosen at start; give --url"):
        status.endpoint_url(None, str(config))
    config.write_text("mirror.engine.metrics.listen =\n")
    with pytest.raises(status.StatusUnavailable, match="serves no endpoint"):
        status.endpoint_url(None, str(config))
    with pytest.raises(status.StatusUnavailable, match="no engine answers at http://127.0.0.1:1"):
        status.fetch("http://127.0.0.1:1", timeout_s=2)


def test_status_documents_carry_null_for_nan():
    from engine.metrics import _redacted

    assert _redacted({"a": [float("nan"), 1.5, "x"]}) == {"a": [None, 1.5, "x"]}


def test_a_topic_that_would_go_round_a_cycle_is_named_in_status_and_metrics_and_keeps_it_ready(endpoint):
    base, engine, _loop = endpoint
    engine.flows[0].looping_topics["both"] = "A -> B -> A"
    assert http_get(f"{base}/ready") == (200, '{"ready": true, "not_ready": []}')
    document = status.fetch(base)
    assert document["flows"][0]["looping_topics"] == [{"topic": "both", "cycle": "A -> B -> A"}]
    assert "  NOT COPIED both: the flows A -> B -> A would copy it all the way round" in status.render(document, base)
    assert 'mirror_engine_looping_topics{cycle="A -> B -> A",flow="A->B",topic="both"} 1.0' in http_get(
        f"{base}/metrics")[1]
