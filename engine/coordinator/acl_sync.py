"""Topic ACL sync, as MM2 does it (docs/security.md, 'ACL sync').

Literal topic ACLs of replicated topics only; ALLOW WRITE is dropped (only the engine writes
remote topics); ALLOW ALL becomes ALLOW READ; DENY entries are copied as they are; the resource
becomes the remote topic. Nothing is ever deleted, on the target or after a removal on the source.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ConfigResource,
    ResourcePatternType,
    ResourceType,
)

log = logging.getLogger(__name__)

# None matches any name, principal and host (the stub types them str)
ALL_TOPIC_ACLS = AclBindingFilter(ResourceType.TOPIC, None, ResourcePatternType.ANY, None, None,  # type: ignore[arg-type]
                                  AclOperation.ANY, AclPermissionType.ANY)


def remote_bindings(bindings: list[AclBinding], should_replicate: Callable[[str], bool],
                    remote_name: Callable[[str], str]) -> list[AclBinding]:
    result = []
    for b in bindings:
        if b.restype != ResourceType.TOPIC or b.resource_pattern_type != ResourcePatternType.LITERAL:
            continue
        if b.permission_type == AclPermissionType.ALLOW and b.operation == AclOperation.WRITE:
            continue
        if not should_replicate(b.name):
            continue
        operation = b.operation
        if b.permission_type == AclPermissionType.ALLOW and operation == AclOperation.ALL:
            operation = AclOperation.READ
        result.append(AclBinding(ResourceType.TOPIC, remote_name(b.name), ResourcePatternType.LITERAL,
                                 b.principal, b.host, operation, b.permission_type))
    return sorted(set(result), key=str)


class AclSync:
    """One flow's ACL sync; a source without an authorizer is reported once, then skipped."""

    def __init__(self, source_admin: AdminClient, target_admin: AdminClient, source: str, target: str):
        self.source_admin = source_admin
        self.target_admin = target_admin
        self.source = source
        self.target = target
        self.source_has_no_authorizer = False
        self.created = 0

    async def _source_has_authorizer(self) -> bool:
        """Kafka 4 brokers without an authorizer answer DescribeAcls with an empty list, not an
        error; the broker's `authorizer.class.name` tells. Unknown (no permission to look): True."""
        try:
            cluster = await asyncio.wrap_future(self.source_admin.describe_cluster(request_timeout=30))
            broker = ConfigResource(ResourceType.BROKER, str(cluster.nodes[0].id))
            configs = await asyncio.wrap_future(
                self.source_admin.describe_configs([broker], request_timeout=30)[broker])
        except (KafkaException, IndexError):
            return True
        entry = configs.get("authorizer.class.name")
        return entry is None or bool(entry.value)

    async def sync(self, should_replicate: Callable[[str], bool], remote_name: Callable[[str], str]) -> None:
        if self.source_has_no_authorizer:
            return
        if not await self._source_has_authorizer():
            self.source_has_no_authorizer = True
            log.info("cluster %s has no authorizer: no topic ACLs to sync into %s", self.source, self.target)
            return
        try:
            bindings = await asyncio.wrap_future(self.source_admin.describe_acls(ALL_TOPIC_ACLS, request_timeout=30))
        except KafkaException as error:
            if error.args[0].code() == KafkaError.SECURITY_DISABLED:
                self.source_has_no_authorizer = True
                log.info("cluster %s has no authorizer: no topic ACLs to sync into %s", self.source, self.target)
                return
            log.warning("cannot list the topic ACLs of cluster %s (the engine needs DESCRIBE on the cluster): %s",
                        self.source, error.args[0].str())
            return
        wanted = remote_bindings(bindings, should_replicate, remote_name)
        if not wanted:
            return
        for binding, future in self.target_admin.create_acls(wanted, request_timeout=30).items():
            try:
                await asyncio.wrap_future(future)
                self.created += 1
            except KafkaException as error:
                log.warning("cannot create ACL %s on cluster %s (the engine needs ALTER on the cluster): %s",
                            binding, self.target, error.args[0].str())
