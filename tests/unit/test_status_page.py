"""The status page at `/`, rendered from hand-built snapshots and read back as a DOM (html.parser), and
the bounded history of figures behind its charts."""

from __future__ import annotations

import time
from types import SimpleNamespace

import msgspec

from engine import ipc
from engine.coordinator.snapshot import flow_status, worker_status
from engine.coordinator.statistics import FlowStatistics, PartitionState
from engine.observability import page
from engine.observability.history import History
from engine.observability.snapshot import AuditStatus, GroupStatus
from tests.dom import Dom
from tests.helpers import http_get
from tests.unit.test_observability import TASKS, endpoint, engine, flow, partition, running_flow, worker  # noqa: F401

replace = msgspec.structs.replace
OVERSIZED = ("cannot produce orders[1]@300 to A.orders on cluster B: Broker: Message size too large. The partition "
             "stops here and is retried at each topic refresh; to leave this record out: "
             "mirror-engine skip <config> --flow A->B --topic orders --partition 1 --past 300")
RETENTION = ("source heartbeats[0] on cluster A: records 0..99 were deleted (retention) before they were copied; "
             "nothing past them is copied. To accept the loss and go on from the log start: mirror-engine skip "
             "<config> --flow A->B --topic heartbeats --partition 0 --past 99")


def state(records: int, lag: int, rate_records: int = 0) -> PartitionState:
    result = PartitionState(records=records, last_acked_offset=records - 1, source_end_offset=records + lag)
    if rate_records:
        result.mm2.record(time.monotonic() * 1000, ipc.PartitionProgress(
            "orders", 0, records - 1, records - 1, rate_records, rate_records * 10, 0, 0, records + lag))
    return result


def busy_engine(**changes):
    partitions = [partition("heartbeats", 0, state(10, 0)), partition("orders", 0, state(350, 0, 300)),
                  partition("orders", 1, state(300, 50))]
    workers = [worker(0, [("heartbeats", 0), ("orders", 0)], reported=[("heartbeats", 0), ("orders", 0)]),
               worker(1, [("orders", 1)], reported=[("orders", 1)])]
    fields = dict(partitions=partitions, heartbeat_age_s=3.0,
                  audit=AuditStatus(0, 4, 1_700_000_000.0, {("orders", 0): 349}),
                  group=GroupStatus("mirror-group", "B", True, True, True))
    return engine(flow(TASKS, workers, **{**fields, **changes}))


def test_the_page_shows_flows_partitions_workers_and_verdicts():
    dom = Dom(page.render(busy_engine(), History())).root
    section = dom.one("section", data_flow="A->B")
    assert "A → B" in section.one("h2").text
    summary = section.one("table", "summary")
    assert summary.one("td", "records").attrs["data-value"] == "660"
    assert summary.one("td", "lag").attrs["data-value"] == "50"
    assert summary.one("td", "partitions").text == "3"
    assert summary.one("td", "heartbeat").text == "3 s"
    assert summary.one("td", "audit").text == "clean (4 passes, last 22:13:20 UTC)"
    assert summary.one("td", "group").text == "mirror-group on B: leader"
    rows = {(r.attrs["data-topic"], r.attrs["data-partition"]): r for r in section.one("table", "partitions").all("tr")
            if "data-topic" in r.attrs}
    assert sorted(rows) == [("heartbeats", "0"), ("orders", "0"), ("orders", "1")]
    assert rows[("orders", "0")].one("td", "records").text == "350"
    assert rows[("orders", "1")].one("td", "lag").text == "50"
    assert [rows[k].one("td", "worker").text for k in sorted(rows)] == ["0", "0", "1"]
    assert rows[("orders", "1")].one("td", "loop").text == "c"
    assert rows[("orders", "1")].one("td", "loop").attrs["title"] == "mirror.engine.loop = c"
    assert {r.one("td", "state").text for r in rows.values()} == {"copying"}
    workers = section.one("table", "workers").all("tr", data_worker="1")[0]
    assert [td.text for td in workers.all("td")] == ["1", "1001", "up", "0", "1", "0 s", "no group"]
    assert section.one("p", "loops").text == "loop c: mirror.engine.loop = c"
    assert section.one("p", "stopped").text == "none"
    assert dom.one("p", "alarms").text == "none" and dom.one(id="state").text == "ready"


def test_a_stopped_partition_shows_its_reason_the_command_and_the_alarms():
    snapshot = busy_engine(stopped_partitions={("orders", 1): OVERSIZED, ("heartbeats", 0): RETENTION,
                                               ("orders", 0): "source topic created again"},
                           unauthorised_topics=["payments"], heartbeat_age_s=90.0,
                           audit=AuditStatus(2, 5, 1_700_000_000.0, {}),
                           group=GroupStatus("mirror-group", "B", True, False, False))
    dom = Dom(page.render(snapshot, History())).root
    stopped = {r.attrs["data-topic"] + r.attrs["data-partition"]: r for r in dom.one("table", "stopped").all("tr")
               if "data-topic" in r.attrs}
    assert stopped["orders1"].one("td", "reason").text == OVERSIZED
    assert stopped["orders1"].one("code").text == (
        "mirror-engine skip <config> --flow A->B --topic orders --partition 1 --past 300")
    assert stopped["heartbeats0"].one("code").text == (
        "mirror-engine skip <config> --flow A->B --topic heartbeats --partition 0 --past 99")
    assert stopped["orders0"].one("td", "command").text == "none: retried at the next refresh"
    partitions = dom.one("table", "partitions")
    assert partitions.one("tr", data_topic="orders", data_partition="1").one("td", "state").text == "stopped"
    assert [li.text for li in dom.one("ul", "alarms").all("li")] == [
        "retention outran the copy: A->B heartbeats[0]",
        "permissions: A->B source topic payments is not authorised to the engine's principal: not copied "
        "(see mirror-engine acls)",
        "heartbeat: A->B newest heartbeat is 1 min 30 s old",
        "audit: A->B 2 sampled records differ",
        "group: A->B membership of group mirror-group does not hold"]
    assert dom.one(id="state").text == "not ready"
    assert "A->B orders[1] stopped: " + OVERSIZED in [li.text for li in dom.one("ul", "not-ready").all("li")]
    assert dom.one("td", "audit").text == "2 mismatches (5 passes, last 22:13:20 UTC)"
    assert dom.one("td", "group").text == "mirror-group on B: member"


def test_every_name_is_escaped():
    hostile = '<script>alert("x")</script>&amp;'
    tasks = [(hostile, 0)]
    snapshot = engine(flow(tasks, [worker(0, tasks, reported=tasks)], name='A"><b>->B', source="<A>",
                           partitions=[partition(hostile, 0, state(5, 0))],
                           stopped_partitions={(hostile, 0): f"refused <{hostile}>"}, unauthorised_topics=[hostile]))
    document = page.render(snapshot, History())
    assert "<script>alert" not in document and "<b>->" not in document and '"><b>' not in document
    dom = Dom(document).root
    assert len(dom.all("script")) == 1  # the page's own refresh
    assert dom.one("section").attrs["data-flow"] == 'A"><b>->B'
    assert dom.one("table", "partitions").one("tr", data_partition="0").attrs["data-topic"] == hostile
    assert dom.one("table", "stopped").one("td", "reason").text == f"refused <{hostile}>"
    assert hostile in dom.one("ul", "alarms").text


def test_the_page_refreshes_itself_and_needs_nothing_from_elsewhere():
    document = page.render(busy_engine(), History())
    dom = Dom(document).root
    script = dom.one("script").text
    assert "setInterval" in script and "fetch(location.href" in script and "5000" in script
    assert not dom.all("link") and not dom.all("img") and "src=" not in document and "http" not in document


def test_the_history_is_bounded_and_follows_the_snapshot():
    history = History(keep=3, sample_s=5.0)
    snapshot = busy_engine()
    assert history.record(snapshot, 100.0)
    assert not history.record(snapshot, 104.9)  # too soon: a page refresh does not add a point
    for at in (105.0, 110.0, 115.0, 120.0):
        assert history.record(snapshot, at)
    lags = [s.lag for s in history.series("A->B", "orders", 1)]
    assert lags == [50, 50, 50] and len(history.series("A->B")) == 3
    assert len(history) == 4  # three partitions and the flow's totals
    fewer = engine(replace(snapshot.flows[0], partitions=snapshot.flows[0].partitions[:1]))
    assert history.record(fewer, 125.0)
    assert len(history) == 2 and history.series("A->B", "orders", 1) == []


def test_charts_draw_the_last_figures():
    history = History(keep=10, sample_s=1.0)
    snapshot = busy_engine()
    for at, lag in enumerate((0, 20, 50)):
        first = snapshot.flows[0]
        parts = [replace(p, lag=lag) if p.partition == 1 else p for p in first.partitions]
        history.record(engine(replace(first, partitions=parts)), float(at))
    dom = Dom(page.render(snapshot, history)).root
    chart = dom.one("tr", data_topic="orders", data_partition="1").one("td", "lag").one("svg")
    points = [tuple(map(float, p.split(","))) for p in chart.one("polyline").attrs["points"].split()]
    assert [x for x, _ in points] == [0.0, 60.0, 120.0]
    assert points[0][1] > points[1][1] > points[2][1] == 1.0  # higher lag, higher on the chart
    assert chart.one("title").text == "lag, last 3 samples, peak 50"


def test_the_snapshot_carries_the_permission_alarm_and_the_leases():
    statistics = FlowStatistics()
    running = running_flow([ipc.PartitionTask("orders", 0, "A.orders")], statistics)
    running.topics.hidden_topics = {"payments", "invoices"}
    assert flow_status(running, time.monotonic(), time.time() * 1000).unauthorised_topics == ["invoices", "payments"]
    process = SimpleNamespace(assignment=SimpleNamespace(worker_index=0, partitions=[], lease_s=5.0), pid=7, alive=True,
                              restarts=0, last_report=None, last_report_at=None)
    leased = worker_status(process, time.monotonic())
    assert leased.lease_s == 5.0
    shown = busy_engine(group=GroupStatus("g", "B", True, False, True))
    shown = engine(replace(shown.flows[0], workers=[replace(w, lease_s=5.0) for w in shown.flows[0].workers]))
    assert Dom(page.render(shown, History())).root.one("tr", data_worker="0").one("td", "lease").text == (
        "held (5 s per renewal)")
    lost = engine(replace(shown.flows[0], group=GroupStatus("g", "B", False, False, False)))
    assert Dom(page.render(lost, History())).root.one("tr", data_worker="0").one("td", "lease").text == "not renewed"


def test_the_endpoint_serves_the_page(endpoint):  # noqa: F811 (the fixture)
    base, holder, _loop = endpoint
    code, body = http_get(f"{base}/")
    assert code == 200
    dom = Dom(body).root
    row = dom.one("tr", data_topic="orders", data_partition="0")
    assert row.one("td", "records").text == "3" and row.one("td", "lag").attrs["data-value"] == "7"
