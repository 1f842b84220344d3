"""One flow source->target, wired from its parts (as MM2's herder runs a flow's connectors):

- topic sync (engine.coordinator.topic_sync): the partitions copied, remote topics, stopped topics;
- placement (placement) and the worker pool (worker_pool, supervisor): who copies what;
- flow statistics (statistics): the workers' reports;
- config and ACL sync (config_sync, acl_sync), checkpoints and group offset sync
  (internal_topics, engine.offsets.checkpoints), the audit (audits): periodic jobs of the
  flow's scheduler (scheduler).
"""

from __future__ import annotations

import logging
import time

from confluent_kafka.admin import AdminClient

from engine import ipc
from engine.clients import client_config, has_own_security, track
from engine.config.model import TARGET_TOPIC_CONFIG_PREFIX, EngineConfig, FlowConfig
from engine.config.precedence import worker_key
from engine.coordinator.acl_sync import AclSync
from engine.coordinator.assignments import assignments
from engine.coordinator.audits import AuditRounds
from engine.coordinator.config_sync import TopicConfigSync, validate_overrides
from engine.coordinator.internal_topics import InternalTopics
from engine.coordinator.membership import Membership
from engine.coordinator.placement import Placement
from engine.coordinator.recreated_topics import RecreatedTopics, kafka_topic_restart
from engine.coordinator.scheduler import Scheduler
from engine.coordinator.statistics import FlowStatistics
from engine.coordinator.supervisor import WorkerProcess
from engine.coordinator.topic_sync import TopicSync
from engine.coordinator.topics import topic_partition_counts
from engine.coordinator.worker_pool import WorkerPool
from engine.filters import RECORD_FILTER_PREFIX, compile_list, load_python_filter
from engine.host import usable_cpus
from engine.offsets.checkpoints import CheckpointEmitter
from engine.offsets.policy import IDENTITY_POLICY_CLASS, make_policy

log = logging.getLogger(__name__)


class ReplicationFlow:
    """Everything one flow source->target needs: topics, workers and their latest reports."""

    def __init__(self, config: EngineConfig, flow: FlowConfig):
        self.config = config
        self.flow = flow
        self.source = config.cluster(flow.source)
        self.target = config.cluster(flow.target)
        self.policy = make_policy(flow.policy_class, flow.source, flow.separator, flow.internal_separator_enabled)
        role = f"{flow.name}|MirrorSourceConnector"
        # an admin role with a login of its own (`A.admin.sasl.jaas.config`) is not given the cluster's
        # rotated credentials; a change of its own restarts the flow (its FlowConfig changes)
        self.source_admin = AdminClient(client_config(self.source, f"{role}|replication-source-admin",
                                                      **flow.source_admin))
        self.target_admin = AdminClient(client_config(self.target, f"{role}|replication-target-admin",
                                                      **flow.target_admin))
        for alias, admin, overrides in ((self.source.alias, self.source_admin, flow.source_admin),
                                        (self.target.alias, self.target_admin, flow.target_admin)):
            if not has_own_security(overrides):
                track(alias, admin)
        # scale-out: this instance's share of the partitions, in the group on the target cluster
        self.membership: Membership | None = None
        self.started_at_ms = time.time() * 1000
        self.statistics = FlowStatistics()
        self.internal_topics = InternalTopics(flow, self.policy, self.source, self.target, self.source_admin,
                                              self.target_admin, self._key, self._worker_key)
        restart = kafka_topic_restart(
            flow.name, lambda: (self.source, self.target), flow.offsets_topic, self.policy, self.source_admin,
            self.target_admin, self._offset_syncs if flow.emit_offset_syncs_enabled else None)
        config_exclude = compile_list(flow.config_properties_exclude, self._key("config.properties.exclude"))
        self.topics = TopicSync(
            flow, config.all_flows or config.flows, self.policy, self.source, self.target, self.source_admin,
            self.target_admin, self.statistics, RecreatedTopics(flow.name, self.source_admin, restart, self._remote),
            config_exclude, self._key)
        self.placement = Placement(lambda: self.flow.tasks_max or usable_cpus(), self.statistics.partitions,
                                   sticky=flow.exactly_once)
        self.pool = WorkerPool(self._make_worker)
        self.config_sync = TopicConfigSync(flow.name, self.source_admin, self.target_admin, flow.source, flow.target,
                                           self._remote, config_exclude, flow.use_defaults_from,
                                           flow.target_topic_overrides)
        self.acl_sync = AclSync(self.source_admin, self.target_admin, flow.source, flow.target)
        self.checkpoints: CheckpointEmitter | None = None
        self.audits = AuditRounds(flow.name, self._make_auditor, self._audited_partitions, flow.audit_interval_s)
        self.scheduler = Scheduler()

    def _key(self, key: str) -> str:
        """The name under which a flow setting was given (per flow or top level)."""
        return f"{self.flow.name}.{key}" if f"{self.flow.name}.{key}" in self.config.raw else key

    def _worker_key(self, key: str) -> str:
        """Connect worker settings of herder source->target come from the target cluster's keys."""
        return worker_key(self.config.raw, self.target.alias, key) or key

    def _override_key(self, name: str) -> str:
        flow_key = f"{self.flow.name}.{TARGET_TOPIC_CONFIG_PREFIX}{name}"
        return flow_key if flow_key in self.config.raw else f"{TARGET_TOPIC_CONFIG_PREFIX}{name}"

    def _remote(self, topic: str) -> str:
        return self.policy.format_remote_topic(self.flow.source, topic)

    def _offset_syncs(self):
        return self.internal_topics.offset_syncs_cluster(), self.internal_topics.offset_syncs_topic()

    async def start(self) -> None:
        for name, value in self.flow.target_topic_overrides.items():
            await validate_overrides(self.target_admin, self.target.alias, {name: value},
                                     self._override_key(name)[: -len(name)])
        record_filter = self.flow.record_filter
        if record_filter is not None and record_filter.python:
            load_python_filter(record_filter.python, self._key(RECORD_FILTER_PREFIX + "python"))
        target_topics = await topic_partition_counts(self.target_admin, self.target.alias,
                                                     self.target.bootstrap_servers)
        await self.internal_topics.ensure(target_topics)
        if self.internal_topics.writes_checkpoints():
            self.checkpoints = self.internal_topics.checkpoint_emitter(
                lambda: {t.topic: t.remote_topic for t in self.topics.partitions}, active=self.leads)
        if self.flow.resume_from_target_enabled and self.flow.policy_class == IDENTITY_POLICY_CLASS \
                and not self.flow.exactly_once:
            log.warning("%s: with the identity policy a remote topic is the source topic's namesake, which other "
                        "producers may write to: a restarted worker resumes from its stored progress, and records "
                        "copied after it may be copied again", self.flow.name)
        self.topics.partitions = await self.topics.sync(target_topics, fail_fast=True)
        await self.pool.start(self._assignments(self.placement.initial(self._running_partitions())))

    def _running_partitions(self) -> list[ipc.PartitionTask]:
        """The partitions this instance copies: not stopped, and (scale-out) owned here."""
        return self.topics.running(self.membership.owns) if self.membership is not None else self.topics.running()

    def leads(self) -> bool:
        """Runs the flow's checkpoints, group offset sync and config and ACL syncs: always when alone,
        in a group only the instance that leads it (engine.coordinator.membership)."""
        return self.membership is None or self.membership.leads()

    async def ownership_changed(self, revoked: set[tuple[str, int]]) -> None:
        """Scale-out: partitions joined or left this instance. The ones that left are drained and
        their progress stored before this returns; the others stay on their workers."""
        async with self.pool.lock:
            running = self._running_partitions()
            await self.pool.apply_locked(self._assignments(self.placement.keep(self.pool.plan(), running)))
        self.statistics.keep_only((t.topic, t.partition) for t in running)  # another instance reports the rest
        log.info("%s: %d of %d partitions copied by this instance, on %d workers", self.flow.name, len(running),
                 len(self.topics.partitions), len(self.pool.workers))

    async def renew_leases(self) -> None:
        await self.pool.renew_leases()

    def _assignments(self, plan: list[list[ipc.PartitionTask]]) -> list[ipc.Assign]:
        return assignments(plan, self.config, self.flow, self.source, self.target, self._offset_syncs(),
                           self.membership, self.topics.max_message_bytes)

    def _on_message(self, message: ipc.Report | ipc.Failed) -> None:
        if isinstance(message, ipc.Failed):
            log.error("%s worker %d failed: %s", self.flow.name, message.worker_index, message.error)
            if message.topic is not None and message.partition is not None:
                self._stop_partition(message.worker_index, message.topic, message.partition, message.error)
            return
        self.statistics.record(message)

    def _stop_partition(self, worker_index: int, topic: str, partition: int, error: str) -> None:
        """The failed worker restarts without the partition; the others never had it."""
        wait_s = self.topics.stop_partition((topic, partition), error)
        log.error("%s: %s[%d] stopped; the other partitions go on; retried at the first topic refresh after %.0fs",
                  self.flow.name, topic, partition, wait_s)
        self.pool.drop_partition(worker_index, topic, partition)

    async def refresh(self) -> None:
        """Picks up new, grown and deleted topics; moves partitions when the set or the load changed."""
        changed = await self.topics.refresh()
        plan, why = self.placement.next(self.pool.plan(), self._running_partitions(), changed,
                                        len(self.topics.partitions))
        if plan is not None:
            log.info("%s: %s", self.flow.name, why)
            await self.pool.apply(self._assignments(plan))

    def use_topics(self, flow: FlowConfig, config: EngineConfig) -> None:
        """A reload changed only `topics` or `topics.exclude`: the next refresh applies them."""
        self.flow, self.config = flow, config
        self.topics.flow = self.internal_topics.flow = flow
        self.topics.all_flows = config.all_flows or config.flows

    def use_all_flows(self, config: EngineConfig) -> None:
        """A reload changed the flows of the file: cycles are judged on them at the next refresh."""
        self.config = config
        self.topics.all_flows = config.all_flows or config.flows

    async def use_clusters(self, config: EngineConfig, changed: set[str]) -> None:
        """New connection settings (rotated credentials or certificates): each worker that uses a
        changed cluster stores its progress, stops and starts again with them, one after another,
        so the flow never stops as a whole and nothing is copied twice."""
        self.config = config
        self.source, self.target = config.cluster(self.flow.source), config.cluster(self.flow.target)
        self.topics.source, self.topics.target = self.source, self.target
        self.internal_topics.source, self.internal_topics.target = self.source, self.target
        self.audits.use_clusters(self.source, self.target)
        if not {self.flow.source, self.flow.target} & changed:
            return
        await self.pool.replace_each(self._assignments(self.pool.plan()))
        log.info("%s: %d workers restarted with the new settings of cluster %s", self.flow.name,
                 len(self.pool.workers), ", ".join(sorted(changed & {self.flow.source, self.flow.target})))

    def _make_worker(self, assignment: ipc.Assign) -> WorkerProcess:
        worker = WorkerProcess(assignment, self._on_message, self.flow.worker_timeout_ms / 1000,
                               kill_when_silent=not self.flow.exactly_once)
        if self.membership is not None:
            worker.lease_granted = self.membership.healthy
        return worker

    async def sync_configs(self) -> None:
        await self.config_sync.sync(sorted(self.topics.topics()))

    async def sync_acls(self) -> None:
        topics = self.topics.topics()
        await self.acl_sync.sync(lambda t: t in topics, self._remote)

    def _make_auditor(self):
        from engine.audit.sampler import SamplingAuditor

        return SamplingAuditor(self.config, self.flow)

    def _audited_partitions(self) -> list[tuple[str, int, str]]:
        return [(t.topic, t.partition, t.remote_topic) for t in self._running_partitions()]

    def start_jobs(self) -> None:
        """The flow's background jobs (refresh, syncs, checkpoints, audit), cancelled by stop()."""
        flow, name = self.flow, self.flow.name
        if flow.refresh_topics_enabled:
            self.scheduler.every(flow.refresh_topics_interval_s, self.refresh, f"{name}: topic refresh failed",
                                 first_now=False)
        # configs were set at creation; this keeps them in line (and always sets the overrides);
        # MM2 runs both syncs at start
        if flow.sync_topic_configs_enabled or flow.target_topic_overrides:
            self.scheduler.every(flow.sync_topic_configs_interval_s, self.sync_configs,
                                 f"{name}: topic config sync failed", when=self.leads)
        if flow.sync_topic_acls_enabled:
            self.scheduler.every(flow.sync_topic_acls_interval_s, self.sync_acls, f"{name}: ACL sync failed",
                                 when=self.leads)
        if self.checkpoints is not None:
            checkpoints = self.checkpoints
            self.scheduler.loop(lambda: checkpoints.run_forever(flow.emit_checkpoints_interval_s),
                                f"{name}: checkpoints stopped")
            if flow.sync_group_offsets_enabled:
                self.scheduler.loop(lambda: checkpoints.sync_groups_forever(flow.sync_group_offsets_interval_s),
                                    f"{name}: group offset sync stopped")
        if flow.audit_interval_s > 0:
            self.scheduler.loop(self.audits.run_forever, f"{name}: the sampling audit stopped")
        self.scheduler.start()

    async def stop(self) -> list[int | None]:
        self.scheduler.stop()
        codes = await self.pool.stop()
        if self.checkpoints is not None:
            self.checkpoints.close()
        return codes

    def progress_line(self) -> str:
        statistics = self.statistics
        stopped = f", stopped: {', '.join(sorted(self.topics.stopped_topics))}" if self.topics.stopped_topics else ""
        if self.topics.looping_topics:
            stopped += f", not copied (would go round a cycle): {', '.join(sorted(self.topics.looping_topics))}"
        owned = f" ({len(self._running_partitions())} here)" if self.membership is not None else ""
        return (f"{self.flow.name}: {statistics.records()} records ({statistics.value_bytes() / 1e6:.1f} MB values) "
                f"copied, lag {statistics.lag()}, {len(self.topics.partitions)} partitions{owned}, "
                f"{len(self.pool.workers)} workers, {self.pool.restarts()} restarts{stopped}")
