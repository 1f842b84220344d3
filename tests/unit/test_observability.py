"""Readiness, the heartbeat alert, the HTTP endpoint and `mirror-engine status`, rendered from
snapshots of the engine (no broker, no coordinator, no worker process)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from types import SimpleNamespace

import msgspec
import pytest

from engine import ipc
from engine.config.loading import from_properties
from engine.config.model import HEARTBEAT_ALERT_KEY, ClusterConfig, FlowConfig
from engine.config.values import ConfigError
from engine.coordinator.audits import AuditRounds
from engine.coordinator.snapshot import flow_status, partition_status
from engine.coordinator.statistics import FlowStatistics, PartitionState
from engine.observability import health, status
from engine.observability.snapshot import (
    CheckpointLatency,
    CheckpointStatus,
    EngineStatus,
    FlowStatus,
    GroupStatus,
    PartitionStatus,
    TopicStatus,
    Window,
    WorkerStatus,
)
from engine.observability.windowed_stats import CheckpointLatencies
from engine.offsets.policy import make_policy
from tests.helpers import http_get

replace = msgspec.structs.replace
TASKS = [("orders", 0), ("orders", 1), ("heartbeats", 0)]


def partition(topic: str, number: int, state: PartitionState | None = None) -> PartitionStatus:
    now = time.monotonic()
    return partition_status(topic, number, f"A.{topic}", state or PartitionState(), "c", "mirror.engine.loop = c", now,
                            now * 1000)


def worker(index: int, tasks: list[tuple[str, int]], reported=None, alive=True, heard_s_ago=0.5) -> WorkerStatus:
    return WorkerStatus(index=index, pid=1000 + index, alive=alive, restarts=0, partitions=list(tasks),
                        reported=None if reported is None else list(reported),
                        last_report_age_s=None if reported is None else heard_s_ago)


def flow(tasks: list[tuple[str, int]], workers: list[WorkerStatus], **fields) -> FlowStatus:
    topics: dict[str, int] = {}
    for topic, _ in tasks:
        topics[topic] = topics.get(topic, 0) + 1
    values = dict(name="A->B", source="A", target="B",
                  topics=[TopicStatus(t, f"A.{t}", n) for t, n in topics.items()], partitions=[],
                  workers=workers, stopped_partitions={}, stopped_topics={}, looping_topics={},
                  heartbeat_age_s=5.0 if any(t == "heartbeats" for t, _ in tasks) else None)
    return FlowStatus(**{**values, **fields})


def engine(*flows: FlowStatus, running=True, stopping=False, alert_s=60.0) -> EngineStatus:
    return EngineStatus(version="1.0", pid=4242, uptime_s=65.0, running=running, stopping=stopping,
                        heartbeat_alert_s=alert_s, flows=list(flows), heartbeats_sent=[])


def ready_flow(**fields) -> FlowStatus:
    return flow(TASKS, [worker(0, TASKS, reported=TASKS)], **fields)


def with_worker(**changes):
    return lambda f: replace(f, workers=[replace(f.workers[0], **changes)])


def test_the_heartbeat_alert_threshold_key():
    base = {"clusters": "A, B", "A.bootstrap.servers": "a:1", "B.bootstrap.servers": "b:1", "A->B.enabled": "true"}
    assert from_properties(base).heartbeat_alert_s == 60.0
    assert from_properties({**base, HEARTBEAT_ALERT_KEY: " 2.5 "}).heartbeat_alert_s == 2.5
    for bad in ("soon", "-1", "nan"):
        with pytest.raises(ConfigError, match=HEARTBEAT_ALERT_KEY):
            from_properties({**base, HEARTBEAT_ALERT_KEY: bad})


def test_ready_only_when_started_and_every_partition_is_consumed_and_produced():
    assert health.not_ready(engine(ready_flow())) == []
    assert health.not_ready(engine(ready_flow(), running=False)) == [
        "starting: creating remote topics and starting workers"]
    assert health.not_ready(engine(ready_flow(), stopping=True)) == ["stopping"]


@pytest.mark.parametrize("change, reason", [
    (with_worker(alive=False), "A->B worker 0 is not running (restarts so far: 0)"),
    (with_worker(last_report_age_s=11.0), "A->B worker 0 (pid 1000) silent for 11s"),
    (with_worker(reported=None), "A->B worker 0 (pid 1000) has not reported since it started"),
    (with_worker(reported=[("orders", 0)]), "A->B worker 0 has not taken on heartbeats[0], orders[1] yet"),
    (lambda f: replace(f, stopped_partitions={("orders", 1): "target refused orders[1]@300"}),
     "A->B orders[1] stopped: target refused orders[1]@300"),
    (lambda f: replace(f, stopped_topics={"big": "remote topic cannot be created"}),
     "A->B big stopped: remote topic cannot be created"),
    (lambda f: replace(f, partitions=[replace(partition("orders", 0), in_flight=7, waiting_s=31.0)]),
     "A->B orders[0]: 7 records in flight, none acknowledged by cluster B for 31s"),
])
def test_each_readiness_condition_names_what_fails(change, reason):
    assert health.not_ready(engine(change(ready_flow()))) == [reason]


def test_deleted_source_topics_and_short_waits_keep_it_ready():
    waiting = replace(partition("orders", 0), in_flight=7, waiting_s=3.0)
    assert health.not_ready(engine(ready_flow(stopped_topics={"gone": "source topic deleted"},
                                              partitions=[waiting]))) == []


def running_flow(tasks: list[ipc.PartitionTask], statistics: FlowStatistics, loop: str = "c",
                 config: FlowConfig | None = None) -> SimpleNamespace:
    """The parts of a ReplicationFlow the snapshot reads."""
    config = config or FlowConfig("A", "B")
    return SimpleNamespace(
        flow=config, config=SimpleNamespace(loop=loop), statistics=statistics,
        source=ClusterConfig("A", "127.0.0.1:1", {}), target=ClusterConfig("B", "127.0.0.1:2", {}),
        topics=SimpleNamespace(partitions=tasks, stopped_partitions={}, stopped_topics={}, looping_topics={},
                               hidden_topics=set()),
        policy=make_policy(config.policy_class, "A", config.separator, config.internal_separator_enabled),
        pool=SimpleNamespace(workers=[]), membership=None, checkpoints=None,
        audits=AuditRounds("A->B", lambda: None, list, 60.0), started_at_ms=time.time() * 1000 - 5_000)


@pytest.mark.parametrize("loop, flow, shown", [
    ("c", FlowConfig("A", "B"), ("c", "mirror.engine.loop = c")),
    ("batch", FlowConfig("A", "B"), ("batch", "mirror.engine.loop = batch")),
    ("batch", FlowConfig("A", "B", producer_compression="lz4"), ("c", "record loop: producer.compression.type = lz4")),
    ("batch", FlowConfig("A", "B", exactly_once=True), ("c", "record loop: exactly-once mode")),
])
def test_status_says_which_loop_copies_each_partition_and_why(loop, flow, shown):
    statistics = FlowStatistics()
    statistics.partitions[("orders", 0)] = PartitionState()
    snapshot = flow_status(running_flow([ipc.PartitionTask("orders", 0, "A.orders")], statistics, loop, flow),
                           time.monotonic(), time.time() * 1000)
    assert [(p.loop, p.loop_reason) for p in snapshot.partitions] == [shown]
    assert health.flow_status(snapshot, 60.0)["loops"] == [{"loop": shown[0], "reason": shown[1], "partitions": 1}]


def test_heartbeat_age_from_the_newest_copied_beat_or_since_the_start():
    now, now_ms = time.monotonic(), time.time() * 1000
    statistics = FlowStatistics()
    tasks = [ipc.PartitionTask(t, p, f"A.{t}", apply_filter=t != "heartbeats") for t, p in TASKS]
    # no beat copied yet: the time since the flow started
    assert flow_status(running_flow(tasks, statistics), now, now_ms).heartbeat_age_s == pytest.approx(5.0, abs=0.5)
    statistics.partitions[("heartbeats", 0)] = PartitionState(newest_acked_timestamp_ms=int(now_ms) - 1_500)
    snapshot = flow_status(running_flow(tasks, statistics), now, now_ms)
    assert snapshot.heartbeat_age_s == pytest.approx(1.5, abs=0.01)
    assert [(p.topic, p.partition, p.remote_topic, p.loop) for p in snapshot.partitions] == [
        ("heartbeats", 0, "A.heartbeats", "c")]
    assert [(t.topic, t.partitions) for t in snapshot.topics] == [("orders", 2), ("heartbeats", 1)]
    assert not health.is_stale(1.5, 60) and health.is_stale(75, 60) and not health.is_stale(75, 0)
    with pytest.raises(AttributeError):  # a snapshot is immutable: readers cannot change the engine's state
        snapshot.heartbeat_age_s = 0.0  # type: ignore[misc]
    no_beats = flow_status(running_flow(tasks[:1], statistics), now, now_ms)
    assert no_beats.heartbeat_age_s is None and not health.is_stale(None, 60)


@pytest.fixture
def endpoint():
    """serve() on a loop of its own thread; yields (base url, the holder of the served snapshot, loop)."""
    from engine.observability.metrics import serve

    state = PartitionState(records=3, value_bytes=30, last_acked_offset=2, source_end_offset=10, in_flight=1)
    state.mm2.record(time.monotonic() * 1000, ipc.PartitionProgress(
        "orders", 0, 2, 2, 3, 30, 0, 1, 10, polled_value_bytes_delta=36,
        record_age=ipc.Timings(3, 30, 5, 15, 15), replication_latency=ipc.Timings(3, 60, 10, 30, 30)))
    beats = PartitionState(newest_acked_timestamp_ms=int(time.time() * 1000) - 90_000)
    latencies = CheckpointLatencies()
    latencies.record(("group-1", "A.orders", 0), time.monotonic() * 1000, 25)
    checkpoints = CheckpointStatus(4, [CheckpointLatency(group, topic, number, Window(last, low, high, avg))
                                       for (group, topic, number), last, low, high, avg
                                       in latencies.measure(time.monotonic() * 1000)])
    holder = SimpleNamespace(status=engine(ready_flow(
        partitions=[partition("heartbeats", 0, beats), partition("orders", 0, state)],
        heartbeat_age_s=health.heartbeat_age_s(beats.newest_acked_timestamp_ms, 0, time.time() * 1000),
        checkpoints=checkpoints)))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start():
        return serve(lambda: holder.status, "127.0.0.1:0")

    server = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    yield f"http://127.0.0.1:{server.server_port}", holder, loop
    server.shutdown()
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def first_flow(holder: SimpleNamespace, **changes) -> None:
    """The served snapshot, with its first flow changed."""
    holder.status = replace(holder.status, flows=[replace(holder.status.flows[0], **changes)])


def test_metrics_carry_mm2_names_and_tags_next_to_the_engines_own(endpoint):
    base, _holder, _loop = endpoint
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
    base, holder, loop = endpoint
    assert http_get(f"{base}/health") == (200, '{"alive": true}')
    assert http_get(f"{base}/ready") == (200, '{"ready": true, "not_ready": []}')
    first_flow(holder, stopped_partitions={("orders", 1): "target refused orders[1]@300 (too large)"})
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
    from engine.observability import metrics

    original = metrics.LOOP_ANSWER_S
    metrics.LOOP_ANSWER_S = 0.5
    try:
        code, body = http_get(f"{base}/health")
        assert code == 503 and json.loads(body)["alive"] is False
    finally:
        metrics.LOOP_ANSWER_S = original
        blocked.set()


def test_the_status_screen(endpoint):
    base, holder, _loop = endpoint
    first_flow(holder, stopped_partitions={("orders", 1): "target refused orders[1]@300 (too large)"})
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


def test_status_counts_what_restarts_did_not_copy_again_and_what_they_did(endpoint):
    base, holder, _loop = endpoint
    quiet = status.fetch(base)
    assert quiet["flows"][0]["resume"] == {"duplicates_avoided": 0, "copied_again": 0}
    assert "  restarts:" not in status.render(quiet, base)
    first_flow(holder, partitions=[partition("orders", 0, PartitionState(resume_found=500)),
                                   partition("orders", 1, PartitionState(resume_found=40, resume_unmatched=1))])
    document = status.fetch(base)
    assert document["flows"][0]["resume"] == {"duplicates_avoided": 540, "copied_again": 1}
    assert "  restarts: 540 records found already copied (not copied again), 1 record copied again" \
        in status.render(document, base).splitlines()


def test_the_status_screen_of_an_instance_in_a_group(endpoint):
    base, holder, _loop = endpoint
    first_flow(holder, group=GroupStatus(id="mirrors", cluster="B", joined=True, leader=True, healthy=False))
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
    from engine.observability.metrics import _redacted

    assert _redacted({"a": [float("nan"), 1.5, "x"]}) == {"a": [None, 1.5, "x"]}


def test_a_topic_that_would_go_round_a_cycle_is_named_in_status_and_metrics_and_keeps_it_ready(endpoint):
    base, holder, _loop = endpoint
    first_flow(holder, looping_topics={"both": "A -> B -> A"})
    assert http_get(f"{base}/ready") == (200, '{"ready": true, "not_ready": []}')
    document = status.fetch(base)
    assert document["flows"][0]["looping_topics"] == [{"topic": "both", "cycle": "A -> B -> A"}]
    assert "  NOT COPIED both: the flows A -> B -> A would copy it all the way round" in status.render(document, base)
    assert 'mirror_engine_looping_topics{cycle="A -> B -> A",flow="A->B",topic="both"} 1.0' in http_get(
        f"{base}/metrics")[1]
