"""Topic sync, as MM2's source connector does it: which source topics a flow copies, their remote
topics (created with their configs, grown with their source), and what stops a topic.

At every refresh: topics the principal may not see are named once; topics that would go round an
identity-policy cycle of flows are left out; deleted or deselected topics stop (their remote topic
and progress are kept); a remote topic that cannot be created stops only its topic; a topic created
again starts over (engine.coordinator.recreated_topics); and partitions stopped by an error of
their own are retried.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient

from engine import ipc
from engine.config.model import ClusterConfig, FlowConfig
from engine.coordinator.config_sync import create_config, describe_listed_topic_configs, describe_topic_configs
from engine.coordinator.recreated_topics import RecreatedTopics
from engine.coordinator.statistics import FlowStatistics, PartitionKey
from engine.coordinator.topics import TopicSpec, ensure_topics, replicated_topics, topic_partition_counts
from engine.coordinator.topology import FlowGraph, path_text
from engine.offsets.policy import DefaultReplicationPolicy

log = logging.getLogger(__name__)

CANNOT_CREATE = "remote topic cannot be created"
# A partition stopped by its own error again and again (a record the target keeps refusing) waits
# longer before each retry: a retry restarts the worker that holds it, with the worker's other
# partitions, so retrying at every short refresh would starve those. 5 s, 10 s, 20 s, then 30 s.
RETRY_BASE_S = 5.0
RETRY_MAX_S = 30.0


class TopicSync:
    """The partitions one flow copies, and why the others are not copied."""

    def __init__(self, flow: FlowConfig, all_flows: list[FlowConfig], policy: DefaultReplicationPolicy,
                 source: ClusterConfig, target: ClusterConfig, source_admin: AdminClient, target_admin: AdminClient,
                 statistics: FlowStatistics, recreated: RecreatedTopics, config_exclude: re.Pattern[str] | None,
                 setting_key: Callable[[str], str], clock: Callable[[], float] = time.monotonic):
        self.flow = flow  # replaced when only `topics` or `topics.exclude` change
        self.all_flows = all_flows  # every flow of the file, for the cycles (replaced at reload)
        self.policy = policy
        self.source, self.target = source, target
        self.source_admin, self.target_admin = source_admin, target_admin
        self.statistics = statistics
        self.recreated = recreated
        self.config_exclude = config_exclude
        self.setting_key = setting_key  # the name under which a flow setting was given
        self.partitions: list[ipc.PartitionTask] = []
        self.stopped_topics: dict[str, str] = {}
        # topics this flow does not copy because the next flows would copy them back: topic -> the
        # clusters they would go round (engine.coordinator.topology)
        self.looping_topics: dict[str, str] = {}
        # partitions stopped by an error of their own (a record the target refuses, records lost to
        # retention, a recreated topic draining), with the error; retried at a topic refresh (see
        # stop_partition for the wait before it)
        self.stopped_partitions: dict[PartitionKey, str] = {}
        self.clock = clock
        # partitions stopped by an error of their own: how often in a row, and when the next retry is due
        self.stops: dict[PartitionKey, int] = {}
        self.retry_at: dict[PartitionKey, float] = {}
        self.retried: set[PartitionKey] = set()  # at the last refresh
        self.hidden_topics: set[str] = set()  # named in `topics`, refused to the principal (logged once)
        self.max_message_bytes: int | None = None

    def stop_partition(self, key: PartitionKey, error: str) -> float:
        """A partition stopped by an error of its own, left out until its retry; returns the seconds until then."""
        self.stopped_partitions[key] = error
        self.stops[key] = self.stops.get(key, 0) + 1
        wait_s = min(RETRY_BASE_S * 2 ** (self.stops[key] - 1), RETRY_MAX_S)
        self.retry_at[key] = self.clock() + wait_s
        return wait_s

    def topics(self) -> set[str]:
        return {t.topic for t in self.partitions}

    def running(self, owns: Callable[[str, int], bool] = lambda _topic, _partition: True) -> list[ipc.PartitionTask]:
        """The partitions not stopped (and, scale-out, owned here: `owns(remote topic, partition)`)."""
        return [t for t in self.partitions if (t.topic, t.partition) not in self.stopped_partitions
                and owns(t.remote_topic, t.partition)]

    async def refresh(self) -> bool:
        """Syncs the topics again; whether the partition set changed (or stopped partitions are retried)."""
        await self.recreated.restart_drained()
        # a partition retried at the last refresh that has not stopped since starts its count again
        for key in self.retried - self.stopped_partitions.keys():
            self.stops.pop(key, None)
        now = self.clock()
        due = sorted(key for key in self.stopped_partitions if self.retry_at.get(key, now) <= now)
        retried = bool(due)
        if retried:
            log.info("%s: retrying stopped partitions %s", self.flow.name, ", ".join(f"{t}[{p}]" for t, p in due))
            for key in due:
                del self.stopped_partitions[key]
                self.retry_at.pop(key, None)
        self.retried = set(due)
        partitions = await self.sync()
        changed = retried or bool(self.recreated.pending) or sorted(partitions) != sorted(self.partitions)
        self.partitions = partitions
        return changed

    async def sync(self, target_topics: dict[str, int] | None = None,
                   fail_fast: bool = False) -> list[ipc.PartitionTask]:
        """Remote topics for every selected source topic; the partitions to replicate.

        A remote topic that cannot be created stops the start-up (fail_fast) or, on a later
        refresh, only that topic: it is reported and retried on the next refresh.
        """
        source_topics = await topic_partition_counts(self.source_admin, self.source.alias,
                                                     self.source.bootstrap_servers)
        await self._report_hidden_topics(source_topics)
        if target_topics is None:
            target_topics = await topic_partition_counts(self.target_admin, self.target.alias,
                                                         self.target.bootstrap_servers)
        wanted = replicated_topics(self.flow, self.policy, source_topics)
        for topic in self._note_looping_topics(wanted):
            del wanted[topic]
        for topic in sorted(self.topics() - wanted.keys() - self.stopped_topics.keys() - self.looping_topics.keys()):
            self._report_deleted(topic, source_topics)
        remote = {topic: self.policy.format_remote_topic(self.flow.source, topic) for topic in wanted}
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
                      self.setting_key("replication.factor"))
            for topic, count in wanted.items()
        ], target_topics)
        if failures and fail_fast:
            raise next(iter(failures.values()))
        tasks: list[ipc.PartitionTask] = []
        for topic, count in wanted.items():
            failure = failures.get(remote[topic])
            if failure is not None:
                log.error("%s: %s; %s is not replicated until this is fixed", self.flow.name, failure, topic)
                self.stopped_topics[topic] = CANNOT_CREATE
                continue
            partitions: range | list[int] = range(count)
            heartbeats = self.policy.is_heartbeats_topic(topic)
            if not heartbeats and self.flow.record_filter is not None \
                    and self.flow.record_filter.partitions is not None:
                partitions = [p for p in partitions if p in self.flow.record_filter.partitions]
            tasks.extend(ipc.PartitionTask(topic, p, remote[topic], apply_filter=not heartbeats) for p in partitions)
            self.stopped_topics.pop(topic, None)
        log.info("%s: replicating %d topics, %d partitions", self.flow.name, len(wanted), len(tasks))
        await self._read_record_size_limit(sorted({t.remote_topic for t in tasks}))
        for topic in await self.recreated.notice((t.topic for t in tasks), self.topics()):
            self.statistics.forget_topic(topic)
            if topic in self.recreated.pending:
                # workers still hold the old partitions: they drain now, the reset follows at the next refresh
                for task in tasks:
                    if task.topic == topic:
                        self.stopped_partitions[(topic, task.partition)] = "source topic created again"
        return tasks

    def _note_looping_topics(self, wanted: dict[str, int]) -> list[str]:
        """The selected topics that the flows after this one would copy back to its source (an
        identity-policy cycle); each is logged when it starts or stops being one."""
        graph = FlowGraph(self.all_flows)
        looping = {}
        for topic in wanted:
            path = graph.loop(self.flow, topic)
            if path is not None:
                looping[topic] = path_text(path)
        for topic in sorted(looping.keys() - self.looping_topics.keys()):
            running = " (its replication stops here; the remote topic is kept)" if topic in self.topics() else ""
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
        log.warning("%s: %s: %s; its replication stopped at source offsets %s; the remote topic %s on "
                    "cluster %s and its stored progress are kept", self.flow.name, topic, reason,
                    self.statistics.acked_offsets(topic), self.policy.format_remote_topic(self.flow.source, topic),
                    self.target.alias)
        self.statistics.forget_topic(topic)
