"""`mirror-engine status`: one screen about a running engine, read from its /status endpoint."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from engine.config.model import DEFAULT_METRICS_LISTEN, METRICS_LISTEN_KEY

TOPICS_SHOWN = 5


class StatusUnavailable(Exception):
    """No answer from the endpoint; the text says where it looked and why."""


def endpoint_url(url: str | None, config_path: str | None) -> str:
    """The engine's base URL: --url, else the config file's metrics listen address, else the default."""
    if url:
        base = url.rstrip("/")
        for suffix in ("/metrics", "/status", "/ready", "/health"):
            base = base.removesuffix(suffix)
        return base if "://" in base else f"http://{base}"
    listen = DEFAULT_METRICS_LISTEN
    if config_path is not None:
        from engine.config.properties import parse_properties

        try:
            with open(config_path, encoding="utf-8") as file:
                listen = parse_properties(file.read()).get(METRICS_LISTEN_KEY, DEFAULT_METRICS_LISTEN).strip()
        except OSError as error:
            raise StatusUnavailable(f"cannot read {config_path}: {error.strerror}") from None
        if not listen:
            raise StatusUnavailable(f"{config_path}: {METRICS_LISTEN_KEY} is empty, so the engine serves no "
                                    f"endpoint; give --url if it runs with --metrics-listen")
    host, _, port = listen.rpartition(":")
    if port == "0":
        raise StatusUnavailable(f"{METRICS_LISTEN_KEY} = {listen}: the port is chosen at start; give --url "
                                f"(the engine logs it as 'metrics on http://...')")
    if host in ("0.0.0.0", "::", "[::]", ""):
        host = "127.0.0.1"
    return f"http://{host}:{port}"


def fetch(base_url: str, timeout_s: float = 10.0) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"{base_url}/status", timeout=timeout_s) as response:
            document = json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            body = json.loads(error.read())
        except ValueError:
            body = None
        detail = body.get("error", "") if isinstance(body, dict) else ""
        raise StatusUnavailable(f"{base_url}/status answered {error.code} {detail}".rstrip()) from None
    except ValueError:
        document = None  # not JSON
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise StatusUnavailable(f"no engine answers at {base_url}: {reason}") from None
    if not (isinstance(document, dict) and isinstance(document.get("flows"), list) and "ready" in document):
        raise StatusUnavailable(f"{base_url}/status answered, but not as mirror-engine does: is it the engine's "
                                f"endpoint (mirror.engine.metrics.listen)?")
    return document


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                      for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip() for row in rows]


def render(status: dict[str, Any], base_url: str) -> str:
    state = "READY" if status["ready"] else "NOT READY"
    alert = status.get("heartbeat_alert_s") or 0
    lines = [f"mirror-engine {status['version']} at {base_url} (pid {status['pid']}), up "
             f"{_duration(status['uptime_s'])}: {state}"]
    rows = [["FLOW", "PARTITIONS", "LAG", "RECORDS/S", "VALUE MB/S", "LATENCY ms avg/max", "WORKERS", "RESTARTS",
             "HEARTBEAT"]]
    for flow in status["flows"]:
        alive = sum(1 for w in flow["workers"] if w["alive"])
        beat = flow["heartbeat"]
        beat_text = "-" if beat is None else (("STALE " if beat["stale"] else "") + _duration(beat["age_s"]))
        rows.append([flow["flow"], str(flow["partitions"]), str(flow["lag"]), f"{flow['record_rate']:.1f}",
                     f"{flow['byte_rate'] / 1e6:.2f}",
                     f"{_ms(flow['replication_latency_ms_avg'])} / {_ms(flow['replication_latency_ms_max'])}",
                     f"{alive}/{len(flow['workers'])}", str(flow["restarts"]), beat_text])
    lines += [""] + _table(rows)
    for flow in status["flows"]:
        lines += ["", f"{flow['flow']}:"]
        workers = ", ".join(
            f"{w['index']} " + (f"pid {w['pid']}" if w["alive"] else "DOWN")
            + f" ({_count(w['partitions'], 'partition')}, {_count(w['restarts'], 'restart')}, "
            + ("no report yet" if w["last_report_s"] is None else f"reported {_duration(w['last_report_s'])} ago")
            + ")" for w in flow["workers"])
        lines.append(f"  workers: {workers or 'none'}")
        group = flow.get("group")
        if group is not None:
            lines.append(f"  group {group['id']} on cluster {group['cluster']}: "
                         f"{len(flow['partitions_here'])} of {flow['partitions']} partitions here"
                         + (", leading it" if group["leader"] else "")
                         + ("" if group["joined"] else ", NOT JOINED YET")
                         + ("" if group["healthy"] else ", MEMBERSHIP NOT CONFIRMED (copying paused)"))
        topics = flow["topics"]
        for topic in topics[:TOPICS_SHOWN]:
            partitions = _count(topic["partitions"], "partition")
            lines.append(f"  {topic['topic']} -> {topic['remote_topic']}: {partitions}, lag {topic['lag']}, "
                         f"{topic['record_rate']:.1f} records/s, {topic['records']} records")
        if len(topics) > TOPICS_SHOWN:
            lines.append(f"  ... {len(topics) - TOPICS_SHOWN} more topics")
        for stopped in flow["stopped_partitions"]:
            lines.append(f"  STOPPED {stopped['topic']}[{stopped['partition']}]: {stopped['reason']}")
        for stopped in flow["stopped_topics"]:
            lines.append(f"  STOPPED {stopped['topic']}: {stopped['reason']}")
        for looping in flow.get("looping_topics", []):
            lines.append(f"  NOT COPIED {looping['topic']}: the flows {looping['cycle']} would copy it all the way "
                         "round")
        resume = flow.get("resume") or {}
        if resume.get("duplicates_avoided") or resume.get("copied_again"):
            lines.append(f"  restarts: {_count(resume['duplicates_avoided'], 'record')} found already copied (not "
                         f"copied again), {_count(resume['copied_again'], 'record')} copied again")
        if flow["heartbeat"] is not None and flow["heartbeat"]["stale"]:
            lines.append(f"  heartbeat stale: newest copied {_duration(flow['heartbeat']['age_s'])} ago (alert after "
                         f"{alert:g}s)")
        if flow["audit"] is not None:
            audit = flow["audit"]
            lines.append(f"  audit: {audit['mismatches']} mismatches in {audit['passes']} passes, "
                         f"{audit['verified_partitions']} partitions verified")
    if status["not_ready"]:
        lines += ["", "not ready because:"] + [f"  - {reason}" for reason in status["not_ready"]]
    return "\n".join(lines)


def run_status(url: str | None, config_path: str | None) -> int:
    """Prints the screen; 0 when the engine is ready, 1 when it answers but is not ready."""
    base = endpoint_url(url, config_path)
    status = fetch(base)
    print(render(status, base))
    return 0 if status["ready"] else 1
