"""The coordinator: per flow, discover topics, create remote topics, run and supervise workers."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from typing import Callable

import msgspec

from confluent_kafka import KafkaError, KafkaException, Producer, TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from engine import clients, ipc, wire
from engine.clients import Interrupted, client_config, connection, has_own_security, rotate_sasl_credentials, track
from engine.config.model import TARGET_TOPIC_CONFIG_PREFIX, ClusterConfig, EngineConfig, FlowConfig
from engine.config.precedence import worker_key
from engine.coordinator.acl_sync import AclSync
from engine.coordinator.config_sync import (
    apply_operations,
    create_config,
    describe_listed_topic_configs,
    describe_topic_configs,
    sync_operations,
    validate_overrides,
)
from engine.coordinator.audits import AuditRounds
from engine.coordinator.membership import Membership
from engine.coordinator.placement import Placement
from engine.coordinator.scheduler import Scheduler
from engine.coordinator.statistics import FlowStatistics
from engine.coordinator.supervisor import WorkerProcess
from engine.coordinator.worker_pool import WorkerPool
from engine.filters import RECORD_FILTER_PREFIX, compile_list, load_python_filter
from engine.host import usable_cpus
from engine.offsets.checkpoints import CheckpointEmitter, OffsetMapReader, OffsetSyncReader
from engine.offsets.translation import READ_THROUGH
from engine.coordinator.topics import (
    METADATA_TIMEOUT_S,
    TopicCreationError,
    TopicSpec,
    ensure_topic,
    ensure_topics,
    replicated_topics,
    topic_partition_counts,
)
from engine.coordinator.topology import FlowGraph, check_same_cluster_aliases, cycle_remarks, path_text
from engine.heartbeat import HeartbeatEmitter
from engine.policy import HEARTBEATS_TOPIC, IDENTITY_POLICY_CLASS, make_policy

log = logging.getLogger(__name__)

PROGRESS_LOG_INTERVAL_S = 10.0
LEASE_RENEWAL_S = 1.0  # scale-out: how often the workers' leases are renewed


def _write_reset(store, target: ClusterConfig, map_topic: str, tombstones: list[bytes],
                 progress: list[tuple[str, int, int]]) -> None:
    """Tombstones first, then progress: the map never covers what progress says is not copied."""
    producer = Producer(client_config(target, "mirror-engine|reset|offset-map-producer", **{"acks": "all"}))
    for key in tombstones:
        producer.produce(map_topic, key=key, value=None, partition=0)
    if producer.flush(30):
        raise RuntimeError(f"tombstones for {map_topic} on cluster {target.alias} not acknowledged")
    store.store(progress)


def _write_syncs(cluster: ClusterConfig, topic: str, syncs: list) -> None:
    producer = Producer(client_config(cluster, "mirror-engine|reset|offset-syncs-producer", **{"acks": "all"}))
    for sync in syncs:
        producer.produce(topic, key=sync.key(), value=sync.value(), partition=0)
    producer.flush(30)


class FlowRunner:
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
        self.pool = WorkerPool(self._make_worker)
        self.partitions: list[ipc.PartitionTask] = []
        self.statistics = FlowStatistics()
        self.placement = Placement(lambda: self.flow.tasks_max or usable_cpus(), self.statistics.partitions,
                                   sticky=flow.exactly_once)
        self.stopped_topics: dict[str, str] = {}
        # topics this flow does not copy because the next flows would copy them back: topic -> the
        # clusters they would go round (engine.coordinator.topology)
        self.looping_topics: dict[str, str] = {}
        # partitions stopped by an error of their own (a record the target refuses, records lost to
        # retention), with the error; retried at each topic refresh
        self.stopped_partitions: dict[tuple[str, int], str] = {}
        self.max_message_bytes: int | None = None
        # source topic ids: a changed id means the topic was deleted and created again
        self.topic_ids: dict[str, str] = {}
        self.pending_resets: set[str] = set()  # recreated topics whose old partitions are draining
        self.offsets_topic = flow.offsets_topic  # MM2's offset.storage.topic of herder source->target
        self.config_exclude = compile_list(flow.config_properties_exclude, self._key("config.properties.exclude"))
        self.acl_sync = AclSync(self.source_admin, self.target_admin, flow.source, flow.target)
        self.config_sync_failures = 0
        self.checkpoints: CheckpointEmitter | None = None
        self.hidden_topics: set[str] = set()  # named in `topics`, refused to the principal (logged once)
        self.started_at_ms = time.time() * 1000
        self.audits = AuditRounds(flow.name, self._make_auditor, self._audited_partitions, flow.audit_interval_s)
        self.scheduler = Scheduler()
        # scale-out: this instance's share of the partitions, in the group on the target cluster
        self.membership: Membership | None = None

    # what metrics and health read (engine.metrics, engine.health)
    @property
    def workers(self) -> list:
        return self.pool.workers

    @property
    def partition_state(self):
        return self.statistics.partitions

    @property
    def auditor(self):
        return self.audits.auditor

    @property
    def audit_passes(self) -> int:
        return self.audits.passes

    @property
    def audit_last_pass_at(self) -> float | None:
        return self.audits.last_pass_at

    def _key(self, key: str) -> str:
        """The name under which a flow setting was given (per flow or top level)."""
        return f"{self.flow.name}.{key}" if f"{self.flow.name}.{key}" in self.config.raw else key

    def _worker_key(self, key: str) -> str:
        """Connect worker settings of herder source->target come from the target cluster's keys."""
        return worker_key(self.config.raw, self.target.alias, key) or key

    def _override_key(self, name: str) -> str:
        flow_key = f"{self.flow.name}.{TARGET_TOPIC_CONFIG_PREFIX}{name}"
        return flow_key if flow_key in self.config.raw else f"{TARGET_TOPIC_CONFIG_PREFIX}{name}"

    async def start(self) -> None:
        for name, value in self.flow.target_topic_overrides.items():
            await validate_overrides(self.target_admin, self.target.alias, {name: value},
                                     self._override_key(name)[: -len(name)])
        record_filter = self.flow.record_filter
        if record_filter is not None and record_filter.python:
            load_python_filter(record_filter.python, self._key(RECORD_FILTER_PREFIX + "python"))
        target_topics = await topic_partition_counts(self.target_admin, self.target.alias, self.target.bootstrap_servers)
        await ensure_topic(self.target_admin, self.target.alias, TopicSpec(
            self.offsets_topic, self.flow.offset_storage_partitions, self.flow.offset_storage_replication_factor,
            {"cleanup.policy": "compact"}, self._worker_key("offset.storage.replication.factor"),
        ), target_topics)
        await ensure_topic(self.target_admin, self.target.alias, TopicSpec(
            wire.offset_map_topic(self.flow.source), 1, self.flow.offset_storage_replication_factor,
            {"cleanup.policy": "compact"}, self._worker_key("offset.storage.replication.factor"),
        ), target_topics)
        if self.flow.emit_offset_syncs_enabled:
            await self._ensure_offset_syncs_topic()
        # as MM2, whose checkpoint connector refuses to run without offset syncs:
        # emit.offset-syncs.enabled = false writes neither
        if self.flow.emit_checkpoints_enabled and self.flow.emit_offset_syncs_enabled:
            checkpoints = wire.checkpoints_topic(self.flow.source, self.policy.internal_separator)
            await ensure_topic(self.target_admin, self.target.alias, TopicSpec(
                checkpoints, 1, self.flow.checkpoints_topic_replication_factor, {"cleanup.policy": "compact"},
                self._key("checkpoints.topic.replication.factor"),
            ), target_topics)
            self.checkpoints = CheckpointEmitter(
                self.flow.name, self.source, self.target, self.source_admin, checkpoints,
                compile_list(self.flow.groups, self._key("groups")),
                compile_list(self.flow.groups_exclude, self._key("groups.exclude")),
                lambda: {t.topic: t.remote_topic for t in self.partitions},
                self._translator(),
                active=self.leads,
            )
        if self.flow.resume_from_target_enabled and self.flow.policy_class == IDENTITY_POLICY_CLASS \
                and not self.flow.exactly_once:
            log.warning("%s: with the identity policy a remote topic is the source topic's namesake, which other "
                        "producers may write to: a restarted worker resumes from its stored progress, and records "
                        "copied after it may be copied again", self.flow.name)
        self.partitions = await self._sync_topics(target_topics, fail_fast=True)
        await self.pool.start(self._assignments(self.placement.initial(self._running_partitions())))

    def _offset_syncs_cluster(self) -> ClusterConfig:
        return self.source if self.flow.offset_syncs_topic_location == "source" else self.target

    def _offset_syncs_topic(self) -> str:
        # named after the cluster it does not live on (MM2-REFERENCE §1.1)
        other = self.flow.target if self.flow.offset_syncs_topic_location == "source" else self.flow.source
        return wire.offset_syncs_topic(other, self.policy.internal_separator)

    async def _ensure_offset_syncs_topic(self) -> None:
        cluster = self._offset_syncs_cluster()
        admin = self.source_admin if cluster is self.source else self.target_admin
        existing = await topic_partition_counts(admin, cluster.alias, cluster.bootstrap_servers)
        await ensure_topic(admin, cluster.alias, TopicSpec(
            self._offset_syncs_topic(), 1, self.flow.offset_syncs_topic_replication_factor,
            {"cleanup.policy": "compact"}, self._key("offset-syncs.topic.replication.factor"),
        ), existing)

    def _translator(self) -> OffsetMapReader | OffsetSyncReader:
        role = f"{self.flow.name}|MirrorCheckpointConnector"
        if self.flow.offset_translation == "mm2":
            return OffsetSyncReader(self._offset_syncs_cluster(), self._offset_syncs_topic(),
                                    f"{role}|offset-syncs-{self.flow.offset_syncs_topic_location}-consumer")
        return OffsetMapReader(self.target, self.flow.source, f"{role}|offset-map-consumer")

    def _current_topics(self) -> set[str]:
        return {t.topic for t in self.partitions}

    async def _sync_topics(self, target_topics: dict[str, int] | None = None,
                           fail_fast: bool = False) -> list[ipc.PartitionTask]:
        """Remote topics for every selected source topic; the partitions to replicate.

        A remote topic that cannot be created stops the start-up (fail_fast) or, on a later
        refresh, only that topic: it is reported and retried on the next refresh.
        """
        source_topics = await topic_partition_counts(self.source_admin, self.source.alias, self.source.bootstrap_servers)
        await self._report_hidden_topics(source_topics)
        if target_topics is None:
            target_topics = await topic_partition_counts(self.target_admin, self.target.alias, self.target.bootstrap_servers)
        wanted = replicated_topics(self.flow, self.policy, source_topics)
        for topic in self._note_looping_topics(wanted):
            del wanted[topic]
        for topic in sorted(self._current_topics() - wanted.keys() - self.stopped_topics.keys()
                            - self.looping_topics.keys()):
            self._report_deleted(topic, source_topics)
        remote = {topic: self.policy.format_remote_topic(self.flow.source, topic) for topic in wanted}
        rf_key = self._key("replication.factor")
        # a new remote topic is created with its configs, not left to wait for the next sync
        new_topics = [topic for topic in wanted if remote[topic] not in target_topics]
        source_configs = await describe_listed_topic_configs(self.source_admin, self.source.alias, new_topics)
        for topic in [t for t in new_topics if t not in source_configs]:  # deleted since it was listed
            del wanted[topic]
        failures = await ensure_topics(self.target_admin, self.target.alias, [
            TopicSpec(remote[topic], count, self.flow.replication_factor,
                      create_config(source_configs.get(topic, []), self.config_exclude,
                                    self.flow.use_defaults_from, self.flow.target_topic_overrides)
                      if topic in new_topics else {},
                      rf_key)
            for topic, count in wanted.items()
        ], target_topics)
        if failures and fail_fast:
            raise next(iter(failures.values()))
        tasks = []
        for topic, count in wanted.items():
            failure = failures.get(remote[topic])
            if failure is not None:
                log.error("%s: %s; %s is not replicated until this is fixed", self.flow.name, failure, topic)
                self.stopped_topics[topic] = "remote topic cannot be created"
                continue
            partitions = range(count)
            heartbeats = self.policy.is_heartbeats_topic(topic)
            if not heartbeats and self.flow.record_filter is not None and self.flow.record_filter.partitions is not None:
                partitions = [p for p in partitions if p in self.flow.record_filter.partitions]
            tasks.extend(ipc.PartitionTask(topic, p, remote[topic], apply_filter=not heartbeats) for p in partitions)
            self.stopped_topics.pop(topic, None)
        log.info("%s: replicating %d topics, %d partitions", self.flow.name, len(wanted), len(tasks))
        await self._read_record_size_limit(sorted({t.remote_topic for t in tasks}))
        await self._notice_recreated_topics(tasks)
        return tasks

    def _note_looping_topics(self, wanted: dict[str, int]) -> list[str]:
        """The selected topics that the flows after this one would copy back to its source (an
        identity-policy cycle); each is logged when it starts or stops being one."""
        graph = FlowGraph(self.config.all_flows or self.config.flows)
        looping = {}
        for topic in wanted:
            path = graph.loop(self.flow, topic)
            if path is not None:
                looping[topic] = path_text(path)
        for topic in sorted(looping.keys() - self.looping_topics.keys()):
            running = " (its replication stops here; the remote topic is kept)" if topic in self._current_topics() else ""
            log.warning("%s: topic %s is not copied: the flows %s would copy it all the way round (the identity "
                        "policy keeps its name), so none of them copies it%s; narrow the topics of one of these "
                        "flows", self.flow.name, topic, looping[topic], running)
            self.statistics.forget_topic(topic)
        for topic in sorted(self.looping_topics.keys() - looping.keys()):
            log.info("%s: topic %s no longer goes round a cycle of flows; it is copied if selected", self.flow.name,
                     topic)
        self.looping_topics = looping
        return sorted(looping)

    async def _report_hidden_topics(self, source_topics: dict[str, int]) -> None:
        """A topic the principal may not describe is left out of the source's topic list without a
        word; a name `topics` gives literally that is not listed is asked for, and a refusal logged."""
        from engine.security.acls import LITERAL, WILDCARD, regex_patterns

        self.hidden_topics -= source_topics.keys()  # visible again: reported again if refused again
        names = sorted(name for name, pattern_type in regex_patterns(self.flow.topics)
                       if pattern_type == LITERAL and name != WILDCARD and name not in source_topics
                       and name not in self.hidden_topics)
        if not names:
            return
        futures = self.source_admin.describe_topics(TopicCollection(names), request_timeout=30)
        for name, future in futures.items():
            try:
                await asyncio.wrap_future(future)
            except KafkaException as error:
                if error.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                    self.hidden_topics.add(name)
                    log.error("%s: source topic %s on cluster %s is not replicated: not authorised: the engine's "
                              "principal needs an ALLOW READ ACL on topic %s (%s); see `mirror-engine acls`",
                              self.flow.name, name, self.source.alias, name, error.args[0].str())

    async def _notice_recreated_topics(self, tasks: list[ipc.PartitionTask]) -> None:
        """A source topic with a new topic id was deleted and created again: its stored progress and
        offset map describe the old topic, so it starts over from its first offset."""
        topics = sorted({t.topic for t in tasks})
        ids = {}
        if topics:
            futures = self.source_admin.describe_topics(TopicCollection(topics), request_timeout=30)
            for topic, future in futures.items():
                try:
                    ids[topic] = str((await asyncio.wrap_future(future)).topic_id)
                except KafkaException:
                    continue  # gone again meanwhile: the next refresh sees it
        recreated = sorted(t for t, topic_id in ids.items() if self.topic_ids.get(t, topic_id) != topic_id)
        self.topic_ids.update(ids)
        for topic in recreated:
            log.warning("%s: source topic %s was deleted and created again (new topic id); it is copied again "
                        "from its first offset, after the old copies on %s", self.flow.name, topic,
                        self.policy.format_remote_topic(self.flow.source, topic))
            self.statistics.forget_topic(topic)
            if topic in self._current_topics():
                # workers still hold the old partitions: they drain now, the reset follows at the next refresh
                for task in tasks:
                    if task.topic == topic:
                        self.stopped_partitions[(topic, task.partition)] = "source topic created again"
                self.pending_resets.add(topic)
            else:
                await self._restart_from_the_beginning(topic)

    async def _restart_from_the_beginning(self, topic: str) -> None:
        """Progress before the first offset, the old offset-map runs tombstoned, and per partition an
        offset sync that rewinds: upstream 0 is downstream where the old copies end (as MM2 writes one
        when upstream offsets go back)."""
        from engine.worker.progress import ProgressStore

        remote = self.policy.format_remote_topic(self.flow.source, topic)
        partitions = sorted(p for p in range((await self._source_partition_count(topic))))
        store = ProgressStore(self.flow.source, self.flow.target, self.offsets_topic,
                              consumer_config=client_config(self.target, f"{self.flow.name}|reset|progress-consumer"),
                              producer_config=client_config(self.target, f"{self.flow.name}|reset|progress-producer"))
        reader = OffsetMapReader(self.target, self.flow.source, f"{self.flow.name}|reset|offset-map-consumer")
        try:
            offset_map = await asyncio.to_thread(reader.read_to_end)
        finally:
            reader.close()
        tombstones = [wire.OffsetRun(topic, p, first, 0, 0, 0).key() for p in partitions
                      for first in list(getattr(offset_map.partitions.get((topic, p)), "runs", {})) + [READ_THROUGH]]
        ends = await self._end_offsets(remote, partitions)
        await asyncio.to_thread(_write_reset, store, self.target, wire.offset_map_topic(self.flow.source), tombstones,
                                [(topic, p, -1) for p in partitions])
        if self.flow.emit_offset_syncs_enabled:
            syncs = [wire.OffsetSync(topic, p, 0, ends.get(p, 0)) for p in partitions]
            await asyncio.to_thread(_write_syncs, self._offset_syncs_cluster(), self._offset_syncs_topic(), syncs)

    async def _source_partition_count(self, topic: str) -> int:
        counts = await topic_partition_counts(self.source_admin, self.source.alias, self.source.bootstrap_servers)
        return counts.get(topic, 0)

    async def _end_offsets(self, topic: str, partitions: list[int]) -> dict[int, int]:
        futures = self.target_admin.list_offsets({TopicPartition(topic, p): OffsetSpec.latest() for p in partitions},
                                                 request_timeout=30)
        ends = {}
        for tp, future in futures.items():
            try:
                ends[tp.partition] = (await asyncio.wrap_future(future)).offset
            except KafkaException:
                continue
        return ends

    async def _read_record_size_limit(self, remote_topics: list[str]) -> None:
        """The smallest max.message.bytes of the remote topics: the workers' producers refuse a larger
        record before it joins a batch, so only that record is refused, never its neighbours."""
        configs = await describe_topic_configs(self.target_admin, self.target.alias, remote_topics)
        limits = [int(e.value) for entries in configs.values() for e in entries
                  if e.name == "max.message.bytes" and e.value]
        # the flow's own override, also while a just-created topic does not describe yet
        override = self.flow.target_topic_overrides.get("max.message.bytes")
        if override:
            limits.append(int(override))
        self.max_message_bytes = min(limits) if limits else None

    def _report_deleted(self, topic: str, source_topics: dict[str, int]) -> None:
        reason = "source topic deleted" if topic not in source_topics else "no longer selected by topics"
        self.stopped_topics[topic] = reason
        offsets = self.statistics.acked_offsets(topic)
        log.warning("%s: %s: %s; its replication stopped at source offsets %s; the remote topic %s on "
                    "cluster %s and its stored progress are kept", self.flow.name, topic, reason, offsets,
                    self.policy.format_remote_topic(self.flow.source, topic), self.target.alias)
        self.statistics.forget_topic(topic)

    def _running_partitions(self) -> list[ipc.PartitionTask]:
        """The partitions this instance copies: not stopped, and (scale-out) owned here."""
        owns = self.membership.owns if self.membership is not None else lambda _topic, _partition: True
        return [t for t in self.partitions if (t.topic, t.partition) not in self.stopped_partitions
                and owns(t.remote_topic, t.partition)]

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
                 len(self.partitions), len(self.workers))

    async def renew_leases(self) -> None:
        await self.pool.renew_leases()

    def _assignments(self, plan: list[list[ipc.PartitionTask]]) -> list[ipc.Assign]:
        return [
            ipc.Assign(
                flow=self.flow.name, source_alias=self.flow.source, target_alias=self.flow.target,
                worker_index=index, partitions=group,
                source_client=connection(self.source), target_client=connection(self.target),
                offsets_topic=self.offsets_topic,
                offset_flush_interval_ms=self.flow.offset_flush_interval_ms,
                poll_timeout_ms=self.flow.consumer_poll_timeout_ms,
                record_filter=self.flow.record_filter,
                offset_syncs_topic=self._offset_syncs_topic() if self.flow.emit_offset_syncs_enabled else None,
                offset_syncs_client=connection(self._offset_syncs_cluster()),
                offset_syncs_role=f"offset-syncs-{self.flow.offset_syncs_topic_location}-producer",
                offset_lag_max=self.flow.offset_lag_max,
                loop=self.config.loop,
                compression=self.flow.producer_compression,
                provenance=self.flow.provenance_header_enabled,
                # the identity policy writes into topics of the same name, which others may write to
                resume_from_target=self.flow.resume_from_target_enabled and not self.flow.exactly_once
                and self.flow.policy_class != IDENTITY_POLICY_CLASS,
                # the flow's budget, shared evenly by its workers
                bandwidth_limit_bytes_per_s=self.flow.bandwidth_limit_bytes_per_s // max(len(plan), 1),
                transactional_id=self._transactional_id(index) if self.flow.exactly_once else None,
                lease_s=self.membership.session_timeout_ms / 2000 if self.membership is not None else 0.0,
                max_message_bytes=self.max_message_bytes,
                secrets=sorted(self.config.secrets),
                consumer_overrides=self.flow.source_consumer,
                producer_overrides=self.flow.target_producer,
            )
            for index, group in enumerate(plan)
        ]

    def _transactional_id(self, index: int) -> str:
        """The same for every start of a worker, so a replacement fences a hung predecessor; under
        scale-out also this instance's own, so the instances' workers of one index do not fence each
        other (a moving partition's transaction is committed before it moves, or aborted under an
        expired lease)."""
        instance = f"{self.membership.instance_id}-" if self.membership is not None else ""
        return f"mirror-engine-{self.flow.name}-{instance}{index}"

    def _on_message(self, message: ipc.Report | ipc.Failed) -> None:
        if isinstance(message, ipc.Failed):
            log.error("%s worker %d failed: %s", self.flow.name, message.worker_index, message.error)
            if message.topic is not None and message.partition is not None:
                self._stop_partition(message.worker_index, message.topic, message.partition, message.error)
            return
        self.statistics.record(message)

    def _stop_partition(self, worker_index: int, topic: str, partition: int, error: str) -> None:
        """The failed worker restarts without the partition; the others never had it."""
        self.stopped_partitions[(topic, partition)] = error
        log.error("%s: %s[%d] stopped; the other partitions go on; retried at the next topic refresh",
                  self.flow.name, topic, partition)
        self.pool.drop_partition(worker_index, topic, partition)

    async def refresh(self) -> None:
        """Picks up new, grown and deleted topics; moves partitions when the set or the load changed."""
        for topic in sorted(self.pending_resets):
            await self._restart_from_the_beginning(topic)
        self.pending_resets.clear()
        retried = bool(self.stopped_partitions)
        if retried:
            log.info("%s: retrying stopped partitions %s", self.flow.name,
                     ", ".join(f"{t}[{p}]" for t, p in sorted(self.stopped_partitions)))
            self.stopped_partitions.clear()
        partitions = await self._sync_topics()
        changed = retried or bool(self.pending_resets) or sorted(partitions) != sorted(self.partitions)
        self.partitions = partitions
        plan, why = self.placement.next(self.pool.plan(), self._running_partitions(), changed, len(partitions))
        if plan is not None:
            log.info("%s: %s", self.flow.name, why)
            await self.pool.apply(self._assignments(plan))

    async def use_clusters(self, config: EngineConfig, changed: set[str]) -> None:
        """New connection settings (rotated credentials or certificates): each worker that uses a
        changed cluster stores its progress, stops and starts again with them, one after another,
        so the flow never stops as a whole and nothing is copied twice."""
        self.config = config
        self.source, self.target = config.cluster(self.flow.source), config.cluster(self.flow.target)
        self.audits.use_clusters(self.source, self.target)
        if not {self.flow.source, self.flow.target} & changed:
            return
        await self.pool.replace_each(self._assignments(self.pool.plan()))
        log.info("%s: %d workers restarted with the new settings of cluster %s", self.flow.name,
                 len(self.workers), ", ".join(sorted(changed & {self.flow.source, self.flow.target})))

    def _make_worker(self, assignment: ipc.Assign) -> WorkerProcess:
        worker = WorkerProcess(assignment, self._on_message, self.flow.worker_timeout_ms / 1000,
                               kill_when_silent=not self.flow.exactly_once)
        if self.membership is not None:
            worker.lease_granted = self.membership.healthy
        return worker

    async def sync_configs(self) -> None:
        """MM2's config sync: every replicated topic whose remote topic exists."""
        topics = sorted(self._current_topics())
        source_configs = await describe_topic_configs(self.source_admin, self.source.alias, topics)
        operations = {
            self.policy.format_remote_topic(self.flow.source, topic): sync_operations(
                entries, self.config_exclude, self.flow.use_defaults_from, self.flow.target_topic_overrides)
            for topic, entries in source_configs.items()
        }
        failures = await apply_operations(self.target_admin, self.target.alias, operations)
        for failure in failures.values():
            log.error("%s: %s", self.flow.name, failure)
        self.config_sync_failures += len(failures)
        log.info("%s: synced the configs of %d remote topics", self.flow.name, len(operations) - len(failures))

    async def sync_acls(self) -> None:
        topics = self._current_topics()
        await self.acl_sync.sync(lambda t: t in topics,
                                 lambda t: self.policy.format_remote_topic(self.flow.source, t))

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
            self.scheduler.loop(lambda: checkpoints.run_forever(flow.emit_checkpoints_interval_s))
            if flow.sync_group_offsets_enabled:
                self.scheduler.loop(lambda: checkpoints.sync_groups_forever(flow.sync_group_offsets_interval_s))
        if flow.audit_interval_s > 0:
            self.scheduler.loop(self.audits.run_forever)
        self.scheduler.start()

    async def stop(self) -> list[int | None]:
        self.scheduler.stop()
        codes = await self.pool.stop()
        if self.checkpoints is not None:
            self.checkpoints.close()
        return codes

    def progress_line(self) -> str:
        records, value_bytes, lag = self.statistics.records(), self.statistics.value_bytes(), self.statistics.lag()
        restarts = self.pool.restarts()
        stopped = f", stopped: {', '.join(sorted(self.stopped_topics))}" if self.stopped_topics else ""
        if self.looping_topics:
            stopped += f", not copied (would go round a cycle): {', '.join(sorted(self.looping_topics))}"
        owned = f" ({len(self._running_partitions())} here)" if self.membership is not None else ""
        return (f"{self.flow.name}: {records} records ({value_bytes / 1e6:.1f} MB values) copied, lag {lag}, "
                f"{len(self.partitions)} partitions{owned}, {len(self.workers)} workers, {restarts} restarts{stopped}")


class Coordinator:
    def __init__(self, config: EngineConfig, metrics_listen: str | None = None,
                 reload: Callable[[bool], EngineConfig] | None = None):
        self.config = config
        # reads the file (and its config providers) again, as the command line serves it
        self.load_config = reload
        self.reload_requested = asyncio.Event()
        self.unapplied_raw: dict[str, str] = {}
        self.flows = [FlowRunner(config, flow) for flow in config.flows]
        self.heartbeat_emitters: list[HeartbeatEmitter] = []
        self.metrics_listen = config.metrics_listen if metrics_listen is None else metrics_listen
        self.metrics_server = None
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
            from engine.metrics import serve

            self.metrics_server = serve(self, self.metrics_listen)
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
            codes = [code for flow in self.flows for code in await flow.stop()]
            for membership in self.memberships.values():
                await membership.close()
            for emitter in self.heartbeat_emitters:
                emitter.close()
            if self.metrics_server is not None:
                self.metrics_server.shutdown()
        for flow in self.flows:
            log.info("%s", flow.progress_line())
        return 0 if all(code in (0, None) for code in codes) else 1

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
            admin = AdminClient(client_config(target, f"{target_alias}|MirrorHeartbeatConnector|heartbeats-target-admin"))
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
            self.heartbeat_emitters.append(HeartbeatEmitter(target, pairs, active=self._heartbeats_leader(target_alias)))

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
            def flows_into() -> list[FlowRunner]:
                return [f for f in self.flows if f.target.alias == alias]

            self.memberships[alias] = Membership(
                self.config.cluster(alias), self.config.group_id, self.config.group_session_timeout_ms,
                topics=lambda: {t.remote_topic for f in flows_into() for t in f.partitions},
                partitions=lambda: {(t.remote_topic, t.partition) for f in flows_into() for t in f.partitions},
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
            except asyncio.TimeoutError:
                pass
            self.reload_requested.clear()
            try:
                await self.reload()
            except Exception as error:  # a failed reload must not stop running replication
                log.error("reading the configuration again failed; the running settings are kept: %s", error)

    async def reload(self) -> None:
        """Applies changed connection settings of clusters in use, then added, removed and changed
        flows; what else changed (heartbeats, the metrics listener, the loop) waits for a restart."""
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
                runner.config = msgspec.structs.replace(runner.config, all_flows=fresh.all_flows)
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
                runner.flow, runner.config = flow, self.config
                await runner.refresh()
                continue
            log.info("flow %s: settings changed; its workers store their progress and start again", name)
            await runner.stop()
            self.flows[self.flows.index(runner)] = await self._start_flow(flow)
        for name in sorted(wanted.keys() - running.keys()):
            log.info("flow %s added to the configuration; starting it", name)
            self.flows.append(await self._start_flow(wanted[name]))

    async def _start_flow(self, flow: FlowConfig) -> "FlowRunner":
        runner = FlowRunner(self.config, flow)
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
            if (old.get("sasl.username"), old.get("sasl.password")) != (new.get("sasl.username"), new.get("sasl.password")) \
                    and "sasl.username" in new:
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
