"""The coordinator, as MM2's herder: runs the flows of the file (engine.coordinator.flow), their
heartbeats and, under scale-out, the group memberships and leases; applies a reloaded file."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec
from confluent_kafka.admin import AdminClient

from engine import clients
from engine.clients import Interrupted, client_config, rotate_sasl_credentials
from engine.config.model import ClusterConfig, EngineConfig, FlowConfig
from engine.coordinator.flow import ReplicationFlow
from engine.coordinator.membership import Membership
from engine.coordinator.snapshot import engine_status
from engine.coordinator.topics import (
    METADATA_TIMEOUT_S,
    TopicCreationError,
    TopicSpec,
    ensure_topic,
    topic_partition_counts,
)
from engine.coordinator.topology import check_same_cluster_aliases, cycle_remarks
from engine.observability.snapshot import EngineStatus
from engine.offsets.heartbeat import HeartbeatEmitter
from engine.offsets.policy import HEARTBEATS_TOPIC

if TYPE_CHECKING:
    from engine.observability.metrics import EndpointServer

log = logging.getLogger(__name__)

PROGRESS_LOG_INTERVAL_S = 10.0
LEASE_RENEWAL_S = 1.0  # scale-out: how often the workers' leases are renewed


class Coordinator:
    def __init__(self, config: EngineConfig, metrics_listen: str | None = None,
                 reload: Callable[[bool], EngineConfig] | None = None):
        self.config = config
        # reads the file (and its config providers) again, as the command line serves it
        self.load_config = reload
        self.reload_requested = asyncio.Event()
        self.unapplied_raw: dict[str, str] = {}
        self.flows = [ReplicationFlow(config, flow) for flow in config.flows]
        self.heartbeat_emitters: list[HeartbeatEmitter] = []
        self.metrics_listen = config.metrics_listen if metrics_listen is None else metrics_listen
        self.metrics_server: EndpointServer | None = None
        self.stopping = asyncio.Event()
        self.heartbeat_alert_s = config.heartbeat_alert_s
        self.started_at = time.monotonic()
        self.running = False  # every flow started, not stopping: what /ready asks first
        self.memberships: dict[str, Membership] = {}  # scale-out: by target cluster alias

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload_requested.set)
        if not self.flows:
            log.error("no flow is enabled: set e.g. A->B.enabled = true")
            return 2
        for remark in cycle_remarks(self.config.all_flows or self.config.flows):
            log.warning("%s", remark)
        try:
            await self._check_cluster_identities()
        except Interrupted:
            log.info("stopped during the start-up check of the clusters, as asked")
            return 0
        if self.metrics_listen:
            from engine.observability.metrics import serve

            self.metrics_server = serve(self.snapshot, self.metrics_listen)
        background: list[asyncio.Task] = []
        try:
            await self._start_heartbeats()
            background = [asyncio.create_task(e.run()) for e in self.heartbeat_emitters]
            for flow in self.flows:
                flow.membership = self._membership(flow.target.alias)
                await flow.start()
            for membership in self.memberships.values():
                membership.start()
            if self.memberships:
                background.append(asyncio.create_task(self._renew_leases_forever()))
            for flow in self.flows:
                flow.start_jobs()
            background.append(asyncio.create_task(self._log_progress()))
            if self.load_config is not None:
                background.append(asyncio.create_task(self._reload_forever()))
            self.running = True
            await self.stopping.wait()
            log.info("stopping: flushing workers and storing progress")
        finally:
            self.running = False
            for membership in self.memberships.values():
                membership.stopping = True  # the workers stop below; the group is left after that
            for task in background:
                task.cancel()
            # every flow's workers flush at once: the stop takes the slowest flow's time, not their sum
            codes = [code for flow_codes in await asyncio.gather(*(flow.stop() for flow in self.flows))
                     for code in flow_codes]
            for membership in self.memberships.values():
                await membership.close()
            for emitter in self.heartbeat_emitters:
                emitter.close()
            if self.metrics_server is not None:
                self.metrics_server.shutdown()
        for flow in self.flows:
            log.info("%s", flow.progress_line())
        return 0 if all(code in (0, None) for code in codes) else 1

    def snapshot(self) -> EngineStatus:
        """The engine's state now, for /metrics, /ready, /status and the status screen."""
        return engine_status(self.flows, self.heartbeat_emitters, self.started_at, self.running,
                             self.stopping.is_set(), self.heartbeat_alert_s)

    async def _check_cluster_identities(self) -> None:
        used = {f.source for f in self.config.flows} | {f.target for f in self.config.flows}
        ids = {}
        for alias in sorted(used):
            ids[alias] = await cluster_id(self.config.cluster(alias), go_on=lambda: not self.stopping.is_set())
        check_same_cluster_aliases(ids)

    async def _start_heartbeats(self) -> None:
        by_target: dict[str, list] = {}
        flow_targets = {flow.target for flow in self.config.flows}
        for pair in self.config.heartbeats:
            by_target.setdefault(pair.target, []).append(pair)
        for target_alias, pairs in sorted(by_target.items()):
            target = self.config.cluster(target_alias)
            admin = AdminClient(client_config(target,
                                              f"{target_alias}|MirrorHeartbeatConnector|heartbeats-target-admin"))
            existing = await topic_partition_counts(admin, target_alias, target.bootstrap_servers)
            try:
                await ensure_topic(admin, target_alias, TopicSpec(
                    HEARTBEATS_TOPIC, 1, max(p.replication_factor for p in pairs), {"cleanup.policy": "compact"},
                    "heartbeats.topic.replication.factor",
                ), existing)
            except TopicCreationError as error:
                if target_alias in flow_targets:
                    raise
                # a cluster that is only read from (a migration's old cluster, say) may not let the
                # engine create topics; as in MM2, that costs its heartbeats, not the replication
                log.warning("%s; no heartbeats are emitted into cluster %s", error, target_alias)
                continue
            self.heartbeat_emitters.append(HeartbeatEmitter(target, pairs,
                                                            active=self._heartbeats_leader(target_alias)))

    def _heartbeats_leader(self, alias: str) -> Callable[[], bool]:
        """Scale-out: heartbeats into a cluster come from the leader of the group there, or, into a
        cluster no flow writes to, from the leader of the first group."""
        if not self.config.group_id:
            return lambda: True
        flow_targets = sorted({flow.target for flow in self.config.flows})
        group_alias = alias if alias in flow_targets else flow_targets[0]
        return lambda: group_alias in self.memberships and self.memberships[group_alias].leads()

    def _membership(self, alias: str) -> Membership | None:
        """Scale-out: this instance's membership of the group on cluster `alias` (made on first use)."""
        if not self.config.group_id:
            return None
        if alias not in self.memberships:
            def flows_into() -> list[ReplicationFlow]:
                return [f for f in self.flows if f.target.alias == alias]

            self.memberships[alias] = Membership(
                self.config.cluster(alias), self.config.group_id, self.config.group_session_timeout_ms,
                topics=lambda: {t.remote_topic for f in flows_into() for t in f.topics.partitions},
                partitions=lambda: {(t.remote_topic, t.partition) for f in flows_into() for t in f.topics.partitions},
                on_change=lambda revoked: self._ownership_changed(alias, revoked),
            )
            if self.running:
                self.memberships[alias].start()
        return self.memberships[alias]

    async def _ownership_changed(self, alias: str, revoked: set[tuple[str, int]]) -> None:
        for flow in list(self.flows):
            if flow.target.alias == alias:
                await flow.ownership_changed(revoked)

    async def _renew_leases_forever(self) -> None:
        """Keeps the workers copying while each group membership holds (see ipc.Lease). A tick that
        comes late means the process stood still: that is noticed before anything is renewed."""
        last_tick = time.monotonic()
        while True:
            now = time.monotonic()
            for membership in self.memberships.values():
                membership.noticed_standstill(now - last_tick - LEASE_RENEWAL_S)
            last_tick = now
            for alias, membership in self.memberships.items():
                if membership.healthy():
                    for flow in self.flows:
                        if flow.target.alias == alias:
                            await flow.renew_leases()
            await asyncio.sleep(LEASE_RENEWAL_S)

    async def _reload_forever(self) -> None:
        """Re-reads the file and its config providers on SIGHUP and every
        mirror.engine.secrets.reload.interval.seconds, so a rotated secret takes effect by itself."""
        interval = self.config.secrets_reload_interval_s or None
        while True:
            try:
                await asyncio.wait_for(self.reload_requested.wait(), interval)
                log.info("SIGHUP: reading the configuration again")
            except TimeoutError:
                pass
            self.reload_requested.clear()
            try:
                await self.reload()
            except Exception as error:  # a failed reload must not stop running replication
                log.error("reading the configuration again failed; the running settings are kept: %s", error)

    async def reload(self) -> None:
        """Applies changed connection settings of clusters in use, then added, removed and changed
        flows; what else changed (heartbeats, the metrics listener, the loop) waits for a restart."""
        assert self.load_config is not None  # reloads run only when the file can be read again
        fresh = await asyncio.to_thread(self.load_config, True)
        await self._apply_clusters(fresh)
        await self._apply_flows(fresh)
        unapplied = (fresh.heartbeats, fresh.metrics_listen, fresh.loop, fresh.group_id,
                     fresh.group_session_timeout_ms) != (
            self.config.heartbeats, self.config.metrics_listen, self.config.loop, self.config.group_id,
            self.config.group_session_timeout_ms)
        if unapplied and fresh.raw != self.unapplied_raw:
            self.unapplied_raw = fresh.raw  # said once per edit, not at every periodic reload
            log.warning("heartbeat, metrics-listener, loop and group settings changed; they take effect at the "
                        "next start")

    async def _apply_flows(self, fresh: EngineConfig) -> None:
        """Flows added to the file start, removed ones stop (progress stored), changed ones start again
        with their new settings; a change of `topics` or `topics.exclude` alone is a topic refresh that
        moves only the partitions it concerns. The other flows go on untouched."""
        running = {runner.flow.name: runner for runner in self.flows}
        wanted = {flow.name: flow for flow in fresh.flows}
        if fresh.all_flows != self.config.all_flows:  # also flows another instance serves (run --clusters)
            remarks = cycle_remarks(fresh.all_flows or fresh.flows)
            if remarks != cycle_remarks(self.config.all_flows or self.config.flows):
                for remark in remarks:
                    log.warning("%s", remark)
            self.config = msgspec.structs.replace(self.config, all_flows=fresh.all_flows)
            for runner in self.flows:  # each judges cycles on the new flows at its next topic refresh
                runner.use_all_flows(msgspec.structs.replace(runner.config, all_flows=fresh.all_flows))
        if running.keys() == wanted.keys() and all(running[n].flow == wanted[n] for n in wanted):
            return
        new_aliases = {a for f in fresh.flows for a in (f.source, f.target)} - {
            a for f in self.config.flows for a in (f.source, f.target)}
        self.config = msgspec.structs.replace(self.config, clusters={**fresh.clusters, **self.config.clusters},
                                              flows=fresh.flows, all_flows=fresh.all_flows, raw=fresh.raw,
                                              secrets=self.config.secrets | fresh.secrets)
        for alias in sorted(new_aliases):
            await cluster_id(self.config.cluster(alias))  # a new cluster must answer, or nothing changes
        for name in sorted(running.keys() - wanted.keys()):
            await running[name].stop()
            self.flows.remove(running[name])
            log.info("flow %s removed from the configuration: its workers stored their progress and stopped", name)
        for name in sorted(running.keys() & wanted.keys()):
            runner, flow = running[name], wanted[name]
            if runner.flow == flow:
                continue
            if msgspec.structs.replace(runner.flow, topics=flow.topics, topics_exclude=flow.topics_exclude) == flow:
                log.info("flow %s: topics are now %r (excluded %r); refreshing its topics", name, flow.topics,
                         flow.topics_exclude)
                runner.use_topics(flow, self.config)
                await runner.refresh()
                continue
            log.info("flow %s: settings changed; its workers store their progress and start again", name)
            await runner.stop()
            self.flows[self.flows.index(runner)] = await self._start_flow(flow)
        for name in sorted(wanted.keys() - running.keys()):
            log.info("flow %s added to the configuration; starting it", name)
            self.flows.append(await self._start_flow(wanted[name]))

    async def _start_flow(self, flow: FlowConfig) -> ReplicationFlow:
        runner = ReplicationFlow(self.config, flow)
        runner.membership = self._membership(flow.target)
        await runner.start()
        runner.start_jobs()
        return runner

    async def _apply_clusters(self, fresh: EngineConfig) -> None:
        changed = {alias for alias, cluster in self.config.clusters.items()
                   if alias in fresh.clusters and fresh.clusters[alias] != cluster}
        if not changed:
            return
        previous = self.config
        self.config = msgspec.structs.replace(
            previous, clusters={**previous.clusters, **{a: fresh.clusters[a] for a in changed}},
            secrets=previous.secrets | fresh.secrets)
        for alias in sorted(changed):
            old, new = previous.clusters[alias].client, fresh.clusters[alias].client
            log.info("cluster %s: new connection settings (%s)", alias,
                     ", ".join(sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))))
            if (old.get("sasl.username"), old.get("sasl.password")) \
                    != (new.get("sasl.username"), new.get("sasl.password")) and "sasl.username" in new:
                count = rotate_sasl_credentials(alias, new["sasl.username"], new["sasl.password"])
                log.info("cluster %s: %d coordinator clients use the new SASL credentials from their next login",
                         alias, count)
            rest = {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)} - {"sasl.username", "sasl.password"}
            if rest:
                log.warning("cluster %s: the coordinator's own clients keep their %s until the next start; "
                            "the workers restart with the new ones", alias, ", ".join(sorted(rest)))
        for flow in self.flows:
            await flow.use_clusters(self.config, changed)

    async def _log_progress(self) -> None:
        started = time.monotonic()
        while True:
            await asyncio.sleep(PROGRESS_LOG_INTERVAL_S)
            for flow in self.flows:
                log.info("%s (%.0fs)", flow.progress_line(), time.monotonic() - started)


async def cluster_id(cluster: ClusterConfig, go_on=lambda: True) -> str:
    return await asyncio.to_thread(clients.cluster_id, cluster, METADATA_TIMEOUT_S, go_on)
