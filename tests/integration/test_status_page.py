"""The status page at `/` of a running engine, as a browser shows it: headless Chromium (Debian's
`chromium` package, installed when missing) loads it from the engine's listener, and the test reads
the DOM the browser built."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.dom import Dom, Node
from tests.helpers import http_get, wait_for
from tests.integration.kafka_io import BASE_TIMESTAMP_MS, Record, end_offsets, mm2_properties, produce
from tests.integration.test_observability import base_url
from tests.system_tools import debian_tool

BROWSER_TIMEOUT_S = 90


def chromium(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess:
    """Headless Chromium with a profile of its own under tmp_path; bounded in time."""
    command = [debian_tool("chromium", "chromium"), "--headless", "--no-sandbox", "--disable-gpu",
               "--no-first-run", f"--user-data-dir={tmp_path / 'chromium-profile'}", *arguments]
    done = subprocess.run(command, capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def rendered(tmp_path: Path, url: str) -> Node:
    """The page's DOM after Chromium loaded it."""
    return Dom(chromium(tmp_path, "--dump-dom", url).stdout).root


def served(url: str) -> Node:
    code, body = http_get(url)
    assert code == 200, body
    return Dom(body).root


def copied(dom: Node, topic: str) -> dict[int, str]:
    """partition -> records copied, as the page's partitions table shows them (none before the first report)."""
    return {int(row.attrs["data-partition"]): row.one("td", "records").text
            for table in dom.all("table", "partitions") for row in table.all("tr", data_topic=topic)}


def partition_row(dom: Node, topic: str, partition: int) -> Node:
    return dom.one("table", "partitions").one("tr", data_topic=topic, data_partition=str(partition))


def test_the_status_page_shows_the_copy_and_a_stopped_partition_with_its_command(
        source_cluster, target_cluster, engine, unique_name, tmp_path):
    topic = source_cluster.create_topic(unique_name("page"), 2)
    first = [Record(i % 2, f"k-{i}".encode(), b"v" * 100, (), BASE_TIMESTAMP_MS + i) for i in range(200)]
    produce(source_cluster.bootstrap_servers, topic, first)
    run = engine(mm2_properties(source_cluster, target_cluster, {
        "A->B.topics": topic, "A->B.target.topic.config.max.message.bytes": "10000", "tasks.max": "1",
        # a stopped partition is retried at a later topic refresh: none while the page is read
        "refresh.topics.interval.seconds": "600"}))
    page = base_url(run) + "/"
    remote = f"A.{topic}"
    wait_for(lambda: end_offsets(target_cluster.bootstrap_servers, remote) == {0: 100, 1: 100}, 60, "the copy", run.log)
    wait_for(lambda: copied(served(page), topic) == {0: "100", 1: "100"}, 30, "the page to count every record", run.log)

    dom = rendered(tmp_path, page)
    section = dom.one("section", data_flow="A->B")
    summary = section.one("table", "summary")
    # the flow copies the topic's two partitions and the heartbeats topic's one
    assert summary.one("td", "partitions").text == "3"
    rows = section.one("table", "partitions").all("tr", data_partition="0") + \
        section.one("table", "partitions").all("tr", data_partition="1")
    assert sorted((r.attrs["data-topic"], r.attrs["data-partition"]) for r in rows) == [
        ("heartbeats", "0"), (topic, "0"), (topic, "1")]
    assert int(summary.one("td", "records").attrs["data-value"]) == sum(
        int(r.one("td", "records").attrs["data-value"]) for r in rows)
    for number in (0, 1):
        row = partition_row(section, topic, number)
        assert row.one("td", "records").text == "100" and row.one("td", "state").text == "copying"
        assert row.all("td")[2].text == remote and row.one("td", "worker").text == "0"
    assert section.one("table", "workers").one("tr", data_worker="0").all("td")[2].text == "up"
    assert dom.one(id="state").text == "ready" and dom.one("p", "stopped").text == "none"

    # a record larger than the remote topic takes stops its partition alone
    big = Record(0, b"big", b"x" * 20_000, (), BASE_TIMESTAMP_MS + 200)
    produce(source_cluster.bootstrap_servers, topic, [big])
    wait_for(lambda: (run.stopped_partitions() or {}).get((topic, 0)), 60, "the partition to stop", run.log)
    dom = rendered(tmp_path, page)
    assert partition_row(dom, topic, 0).one("td", "state").text == "stopped"
    assert partition_row(dom, topic, 1).one("td", "state").text == "copying"
    stopped = dom.one("table", "stopped").one("tr", data_topic=topic, data_partition="0")
    reason = stopped.one("td", "reason").text
    assert reason.startswith(f"cannot produce {topic}[0]@100 to {remote} on cluster B: ") and "too large" in reason
    assert stopped.one("code").text == (
        f"mirror-engine skip <config> --flow A->B --topic {topic} --partition 0 --past 100")
    assert dom.one(id="state").text == "not ready"

    shot = tmp_path / "status-page.png"
    chromium(tmp_path, "--window-size=1200,900", "--hide-scrollbars", f"--screenshot={shot}", page)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
