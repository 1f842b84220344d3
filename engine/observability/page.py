"""The status page at `/` of the engine's HTTP endpoint: one HTML document, rendered on the server from
one snapshot (engine.observability.snapshot) and the last minutes of figures (engine.observability.history).

Self-contained: no asset from anywhere, no build step; the charts are inline SVG. Readable without
JavaScript; with it, a few inline lines fetch the page again every REFRESH_S and swap its body. Every
text that comes from the engine (topic, flow, cluster names, stop reasons) is redacted as /status
redacts it, then HTML-escaped.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterable

from engine.observability import health
from engine.observability.history import History
from engine.observability.snapshot import EngineStatus, FlowStatus, PartitionStatus, WorkerStatus
from engine.security.secrets import redact

REFRESH_S = 5
SPARK_W, SPARK_H = 120, 22
# engine.fastpath.errors words a stop by retention so, and names the skip that resolves a stop by one record
RETENTION_MARK = "(retention)"
_SKIP_COMMAND = re.compile(r"mirror-engine skip \S+ --flow \S+ --topic \S+ --partition \d+ --past \d+")
_NOT_AUTHORISED = ("not authorised", "AUTHORIZATION_FAILED", "ALLOW WRITE ACL", "ALLOW READ ACL")

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1em 2em;color:#1d2329;background:#fff}
h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.15em;margin:1.2em 0 .3em}h3{font-size:1em;margin:.8em 0 .2em}
table{border-collapse:collapse;margin:.2em 0 .6em}th,td{padding:2px 8px;text-align:left;vertical-align:middle}
th{background:#eef1f4;font-weight:600}tr:nth-child(even) td{background:#f7f8fa}td.n{text-align:right}
.ok{color:#1a7f37}.bad{color:#c62828;font-weight:600}.muted{color:#667}
.alarms li{color:#c62828}.spark{color:#2f6db5;vertical-align:middle}code{background:#f0f0f0;padding:1px 4px}
td.reason{max-width:38em}td.command{max-width:30em;overflow-wrap:anywhere}
section.flow{border-top:2px solid #d0d7de;margin-top:1em}
"""

# fetch the page again and swap its body: readable without it, fresh with it
_SCRIPT = """
setInterval(function () {
  fetch(location.href, {cache: "no-store"}).then(function (r) { return r.text(); }).then(function (t) {
    document.body.replaceWith(new DOMParser().parseFromString(t, "text/html").body);
  }).catch(function () {});
}, REFRESH_MS);
""".replace("REFRESH_MS", str(REFRESH_S * 1000))


def text(value: object) -> str:
    """An engine-given value as HTML text: redacted, escaped."""
    return html.escape(redact(str(value)), quote=True)


def render(engine: EngineStatus, history: History) -> str:
    reasons = health.not_ready(engine)
    state = ('<span class="ok">ready</span>' if not reasons else
             '<span class="bad">not ready</span>')
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>mirror-engine {text(engine.version)}</title>",
        f"<style>{_STYLE}</style><script>{_SCRIPT}</script></head><body>",
        f'<h1>mirror-engine <span id="state">{state}</span></h1>',
        f'<p class="muted" id="engine">version {text(engine.version)} · pid {engine.pid} · up '
        f'{_duration(engine.uptime_s)} · taken {time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}'
        f'<noscript> · reload to refresh</noscript></p>',
    ]
    if reasons:
        parts.append(_list("not-ready", "Not ready because", reasons))
    parts.append(_list("alarms", "Alarms", [f"{kind}: {what}" for kind, what in alarms(engine)], "none"))
    parts += [_flow(flow, engine.heartbeat_alert_s, history) for flow in engine.flows]
    if not engine.flows:
        parts.append('<p class="muted">no flow is enabled</p>')
    parts.append("</body></html>")
    return "\n".join(parts)


def alarms(engine: EngineStatus) -> list[tuple[str, str]]:
    """(kind, what) for each condition an operator must act on."""
    found = []
    for flow in engine.flows:
        for (topic, partition), reason in sorted(flow.stopped_partitions.items()):
            if RETENTION_MARK in reason:
                found.append(("retention outran the copy", f"{flow.name} {topic}[{partition}]"))
            elif any(mark in reason for mark in _NOT_AUTHORISED):
                found.append(("permissions", f"{flow.name} {topic}[{partition}]: the target refuses its records"))
        for topic in flow.unauthorised_topics:
            found.append(("permissions", f"{flow.name} source topic {topic} is not authorised to the engine's "
                                         "principal: not copied (see mirror-engine acls)"))
        for topic, reason in sorted(flow.stopped_topics.items()):
            if reason == health.CANNOT_CREATE:
                found.append(("permissions", f"{flow.name} remote topic of {topic} cannot be created"))
        if health.is_stale(flow.heartbeat_age_s, engine.heartbeat_alert_s):
            found.append(("heartbeat", f"{flow.name} newest heartbeat is {_duration(flow.heartbeat_age_s or 0)} old"))
        if flow.audit is not None and flow.audit.mismatches:
            found.append(("audit", f"{flow.name} {flow.audit.mismatches} sampled records differ"))
        if flow.group is not None and not flow.group.healthy:
            found.append(("group", f"{flow.name} membership of group {flow.group.id} does not hold"))
    return found


def resolution(flow: str, topic: str, partition: int, reason: str) -> str:
    """The command that resolves a stopped partition, as the stop reason names it or as `mirror-engine
    skip` takes it; empty when the engine resolves it itself."""
    named = _SKIP_COMMAND.search(reason)
    if named:
        return named.group(0)
    if any(mark in reason for mark in _NOT_AUTHORISED):
        return "mirror-engine acls <config>"
    if "created again" in reason:
        return ""  # the recreated topic drains, then is copied from its start
    return f"mirror-engine skip <config> --flow {flow} --topic {topic} --partition {partition} --past <OFFSET>"


def _flow(flow: FlowStatus, alert_s: float, history: History) -> str:
    summary = health.flow_status(flow, alert_s)
    totals = history.series(flow.name)
    name = text(flow.name)
    parts = [f'<section class="flow" data-flow="{name}">',
             f"<h2>{name} <span class=\"muted\">{text(flow.source)} → {text(flow.target)}</span></h2>",
             "<table class=\"summary\"><tr>" + "".join(f"<th>{h}</th>" for h in (
                 "partitions", "records copied", "records/s", "lag", "heartbeat age", "last audit", "group")) + "</tr>",
             "<tr>" + "".join([
                 _cell("partitions", flow.partition_count),
                 _cell("records", sum(s.records for s in flow.partitions)),
                 _cell("rate", f"{summary['record_rate']:.1f}", _spark([s.rate for s in totals], "records/s")),
                 _cell("lag", summary["lag"], _spark([s.lag for s in totals], "lag")),
                 _heartbeat(flow.heartbeat_age_s, alert_s),
                 _audit(flow),
                 _group(flow),
             ]) + "</tr></table>"]
    parts.append(_partitions(flow, history))
    parts.append(_workers(flow))
    parts.append(_stopped(flow))
    if flow.stopped_topics or flow.looping_topics:
        rows = [(t, r) for t, r in sorted(flow.stopped_topics.items())]
        rows += [(t, f"not copied: it would go round {c}") for t, c in sorted(flow.looping_topics.items())]
        parts.append(_table("stopped-topics", "Topics not copied", ("topic", "reason"),
                            [f'<tr data-topic="{text(t)}"><td>{text(t)}</td><td>{text(r)}</td></tr>'
                             for t, r in rows]))
    parts.append("</section>")
    return "\n".join(parts)


def _partitions(flow: FlowStatus, history: History) -> str:
    holders = {key: w for w in flow.workers for key in w.partitions}
    rows = []
    for state in flow.partitions:
        key = (state.topic, state.partition)
        past = history.series(flow.name, state.topic, state.partition)
        holder = holders.get(key)
        rows.append(
            f'<tr data-topic="{text(state.topic)}" data-partition="{state.partition}">'
            f"<td>{text(state.topic)}</td><td class=\"n\">{state.partition}</td><td>{text(state.remote_topic)}</td>"
            + _cell("records", state.records)
            + _cell("rate", f"{state.record_rate:.1f}", _spark([s.rate for s in past], "records/s"))
            + _cell("lag", "?" if state.lag is None else state.lag, _spark([s.lag for s in past], "lag"))
            + f'<td class="worker">{"-" if holder is None else holder.index}</td>'
            + f'<td class="loop" title="{text(state.loop_reason)}">{text(state.loop)}</td>'
            + f'<td class="state">{_partition_state(flow, state)}</td></tr>')
    return _table("partitions", "Partitions", ("topic", "partition", "remote topic", "records copied", "records/s",
                                               "lag", "worker", "loop", "state"), rows)


def _partition_state(flow: FlowStatus, state: PartitionStatus) -> str:
    if (state.topic, state.partition) in flow.stopped_partitions:
        return '<span class="bad">stopped</span>'
    if state.waiting_s is not None and state.waiting_s > health.READY_STALL_S:
        return f'<span class="bad">no ack for {_duration(state.waiting_s)}</span>'
    return '<span class="ok">copying</span>'


def _workers(flow: FlowStatus) -> str:
    loops = sorted({(s.loop, s.loop_reason) for s in flow.partitions})
    rows = [f'<tr data-worker="{w.index}"><td class="n">{w.index}</td><td class="n">{w.pid or "-"}</td>'
            f"<td>{_worker_state(w)}</td><td class=\"n\">{w.restarts}</td><td class=\"n\">{len(w.partitions)}</td>"
            f"<td>{'-' if w.last_report_age_s is None else _duration(w.last_report_age_s)}</td>"
            f'<td class="lease">{_lease(flow, w)}</td></tr>' for w in flow.workers]
    out = _table("workers", "Workers", ("worker", "pid", "state", "restarts", "partitions", "last report", "lease"),
                 rows)
    if loops:
        out += "\n<p class=\"loops\">" + "; ".join(
            f"loop <b>{text(loop)}</b>: {text(reason)}" for loop, reason in loops) + "</p>"
    return out


def _worker_state(worker: WorkerStatus) -> str:
    if health.worker_up(worker.last_report_age_s, worker.alive):
        return '<span class="ok">up</span>'
    return '<span class="bad">down</span>' if not worker.alive else '<span class="bad">silent</span>'


def _lease(flow: FlowStatus, worker: WorkerStatus) -> str:
    if worker.lease_s <= 0 or flow.group is None:
        return '<span class="muted">no group</span>'
    if flow.group.healthy:
        return f"held ({_duration(worker.lease_s)} per renewal)"
    return '<span class="bad">not renewed</span>'


def _stopped(flow: FlowStatus) -> str:
    rows = []
    for (topic, partition), reason in sorted(flow.stopped_partitions.items()):
        command = resolution(flow.name, topic, partition, reason)
        rows.append(f'<tr data-topic="{text(topic)}" data-partition="{partition}"><td>{text(topic)}</td>'
                    f'<td class="n">{partition}</td><td class="reason">{text(reason)}</td>'
                    f'<td class="command">' + (f"<code>{text(command)}</code>" if command else
                                               '<span class="muted">none: retried at the next refresh</span>')
                    + "</td></tr>")
    return _table("stopped", "Stopped partitions", ("topic", "partition", "reason", "resolved by"), rows, "none")


def _heartbeat(age_s: float | None, alert_s: float) -> str:
    if age_s is None:
        return '<td class="heartbeat muted">no heartbeats topic</td>'
    shown = _duration(age_s)
    if health.is_stale(age_s, alert_s):
        return f'<td class="heartbeat bad" data-value="{age_s:.3f}">{shown} (stale)</td>'
    return f'<td class="heartbeat" data-value="{age_s:.3f}">{shown}</td>'


def _audit(flow: FlowStatus) -> str:
    audit = flow.audit
    if audit is None:
        return '<td class="audit muted">off</td>'
    if audit.last_pass_at is None:
        return '<td class="audit muted">no pass yet</td>'
    when = time.strftime("%H:%M:%S UTC", time.gmtime(audit.last_pass_at))
    if audit.mismatches:
        return f'<td class="audit bad">{audit.mismatches} mismatches ({audit.passes} passes, last {when})</td>'
    return f'<td class="audit ok">clean ({audit.passes} passes, last {when})</td>'


def _group(flow: FlowStatus) -> str:
    group = flow.group
    if group is None:
        return '<td class="group muted">alone</td>'
    role = "leader" if group.leader else "member" if group.joined else "not joined"
    mark = "ok" if group.healthy else "bad"
    return f'<td class="group {mark}">{text(group.id)} on {text(group.cluster)}: {role}</td>'


def _cell(name: str, value: object, chart: str = "") -> str:
    shown = f"{value:,}" if isinstance(value, int) else text(value)
    return f'<td class="n {name}" data-value="{text(value)}">{shown}{" " + chart if chart else ""}</td>'


def _spark(values: list[float] | list[int], what: str) -> str:
    """An inline SVG line of the values, oldest left, scaled to their largest."""
    if len(values) < 2:
        return ""
    top = max(values) or 1
    step = SPARK_W / (len(values) - 1)
    points = " ".join(f"{i * step:.1f},{SPARK_H - 1 - v / top * (SPARK_H - 2):.1f}" for i, v in enumerate(values))
    label = f"{what}, last {len(values)} samples, peak {top:g}"
    return (f'<svg class="spark" width="{SPARK_W}" height="{SPARK_H}" viewBox="0 0 {SPARK_W} {SPARK_H}" role="img" '
            f'aria-label="{label}"><title>{label}</title><polyline fill="none" stroke="currentColor" '
            f'stroke-width="1.5" points="{points}"/></svg>')


def _table(name: str, title: str, headers: Iterable[str], rows: list[str], empty: str = "") -> str:
    if not rows and not empty:
        return ""
    head = f'<h3>{title}</h3><table class="{name}"><tr>' + "".join(f"<th>{h}</th>" for h in headers) + "</tr>"
    if not rows:
        return f'<h3>{title}</h3><p class="{name} muted">{empty}</p>'
    return head + "\n" + "\n".join(rows) + "</table>"


def _list(name: str, title: str, items: list[str], empty: str = "") -> str:
    if not items:
        return f'<h2>{title}</h2><p class="{name} muted">{empty}</p>'
    return f'<h2>{title}</h2><ul class="{name}">' + "".join(f"<li>{text(i)}</li>" for i in items) + "</ul>"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:.0f} s"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:.0f} min"
