"""An AdminClient double that keeps topics in memory: what the coordinator's topic sync, config sync
and recreated-topic reset ask of a cluster, answered as confluent-kafka answers (futures)."""

from __future__ import annotations

import concurrent.futures
import uuid
from types import SimpleNamespace

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import ConfigEntry


def done(result=None, error: int | None = None) -> concurrent.futures.Future:
    future: concurrent.futures.Future = concurrent.futures.Future()
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(KafkaException(KafkaError(error)))
    return future


class FakeAdmin:
    def __init__(self) -> None:
        self.topics: dict[str, int] = {}  # name -> partition count
        self.ids: dict[str, str] = {}
        self.configs: dict[str, dict[str, str]] = {}
        self.end_offsets: dict[tuple[str, int], int] = {}
        self.created: list[tuple[str, int, dict[str, str]]] = []
        self.grown: list[tuple[str, int]] = []

    def add_topic(self, name: str, partitions: int, **configs: str) -> None:
        self.topics[name] = partitions
        self.ids[name] = uuid.uuid4().hex
        self.configs[name] = dict(configs)

    def delete_topic(self, name: str) -> None:
        for table in (self.topics, self.ids, self.configs):
            table.pop(name, None)

    def list_topics(self, timeout: float = -1):
        return SimpleNamespace(topics={name: SimpleNamespace(partitions=dict.fromkeys(range(count)), error=None)
                                       for name, count in self.topics.items()})

    def describe_topics(self, topics, request_timeout: float = -1):
        return {name: done(SimpleNamespace(topic_id=self.ids[name])) if name in self.ids
                else done(error=KafkaError.UNKNOWN_TOPIC_OR_PART) for name in topics.topic_names}

    def describe_configs(self, resources, request_timeout: float = -1):
        return {resource: done({k: ConfigEntry(k, v) for k, v in self.configs[resource.name].items()})
                if resource.name in self.configs else done(error=KafkaError.UNKNOWN_TOPIC_OR_PART)
                for resource in resources}

    def create_topics(self, new_topics, operation_timeout: float = -1, validate_only: bool = False):
        futures = {}
        for new in new_topics:
            if new.topic in self.topics:
                futures[new.topic] = done(error=KafkaError.TOPIC_ALREADY_EXISTS)
                continue
            self.add_topic(new.topic, new.num_partitions, **(new.config or {}))
            self.created.append((new.topic, new.num_partitions, dict(new.config or {})))
            futures[new.topic] = done()
        return futures

    def create_partitions(self, new_partitions, operation_timeout: float = -1):
        for new in new_partitions:
            self.topics[new.topic] = new.new_total_count
            self.grown.append((new.topic, new.new_total_count))
        return {new.topic: done() for new in new_partitions}

    def list_offsets(self, requests, request_timeout: float = -1):
        return {tp: done(SimpleNamespace(offset=self.end_offsets.get((tp.topic, tp.partition), 0)))
                for tp in requests}

    def incremental_alter_configs(self, resources, request_timeout: float = -1):
        from confluent_kafka.admin import AlterConfigOpType

        futures = {}
        for resource in resources:
            if resource.name not in self.configs:
                futures[resource] = done(error=KafkaError.UNKNOWN_TOPIC_OR_PART)
                continue
            for entry in resource.incremental_configs:
                if entry.incremental_operation == AlterConfigOpType.DELETE:
                    self.configs[resource.name].pop(entry.name, None)
                else:
                    self.configs[resource.name][entry.name] = entry.value
            futures[resource] = done()
        return futures
