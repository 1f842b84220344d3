"""What a worker is told to do: its partitions and every setting of the flow it needs (ipc.Assign)."""

from __future__ import annotations

from engine import ipc
from engine.batch.choice import flow_loop
from engine.clients import connection
from engine.config.model import ClusterConfig, EngineConfig, FlowConfig
from engine.coordinator.membership import Membership
from engine.offsets.policy import IDENTITY_POLICY_CLASS


def transactional_id(flow: FlowConfig, membership: Membership | None, index: int) -> str:
    """The same for every start of a worker, so a replacement fences a hung predecessor; under
    scale-out also this instance's own, so the instances' workers of one index do not fence each
    other (a moving partition's transaction is committed before it moves, or aborted under an
    expired lease)."""
    instance = f"{membership.instance_id}-" if membership is not None else ""
    return f"mirror-engine-{flow.name}-{instance}{index}"


def assignments(plan: list[list[ipc.PartitionTask]], config: EngineConfig, flow: FlowConfig,
                source: ClusterConfig, target: ClusterConfig, offset_syncs: tuple[ClusterConfig, str],
                membership: Membership | None, max_message_bytes: int | None) -> list[ipc.Assign]:
    """One Assign per group of the plan; `offset_syncs`: the offset-syncs topic's cluster and name."""
    offset_syncs_cluster, offset_syncs_topic = offset_syncs
    return [
        ipc.Assign(
            flow=flow.name, source_alias=flow.source, target_alias=flow.target,
            worker_index=index, partitions=group,
            source_client=connection(source), target_client=connection(target),
            offsets_topic=flow.offsets_topic,
            offset_flush_interval_ms=flow.offset_flush_interval_ms,
            poll_timeout_ms=flow.consumer_poll_timeout_ms,
            record_filter=flow.record_filter,
            offset_syncs_topic=offset_syncs_topic if flow.emit_offset_syncs_enabled else None,
            offset_syncs_client=connection(offset_syncs_cluster),
            offset_syncs_role=f"offset-syncs-{flow.offset_syncs_topic_location}-producer",
            offset_lag_max=flow.offset_lag_max,
            loop=flow_loop(config.loop, flow, source, target)[0],
            compression=flow.producer_compression,
            provenance=flow.provenance_header_enabled,
            # the identity policy writes into topics of the same name, which others may write to
            resume_from_target=flow.resume_from_target_enabled and not flow.exactly_once
            and flow.policy_class != IDENTITY_POLICY_CLASS,
            # the flow's budget, shared evenly by its workers
            bandwidth_limit_bytes_per_s=flow.bandwidth_limit_bytes_per_s // max(len(plan), 1),
            transactional_id=transactional_id(flow, membership, index) if flow.exactly_once else None,
            lease_s=membership.session_timeout_ms / 2000 if membership is not None else 0.0,
            max_message_bytes=max_message_bytes,
            secrets=sorted(config.secrets),
            consumer_overrides=flow.source_consumer,
            producer_overrides=flow.target_producer,
        )
        for index, group in enumerate(plan)
    ]
