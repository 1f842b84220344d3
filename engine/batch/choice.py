"""Which loop copies a flow's partitions when the batch loop is asked for, and why: the coordinator tells
its workers (ipc.Assign.loop) and /status says it (loop, loop_reason); docs/batch-relay.md, "In the worker"."""

from __future__ import annotations

from collections.abc import Mapping

from engine.batch.security import batch_refusal
from engine.clients import connection, role_connection
from engine.config.model import ClusterConfig, FlowConfig


def batch_loop_refusal(record_filter: object, provenance: bool, exactly_once: bool, compression: str,
                       source: Mapping[str, str], target: Mapping[str, str]) -> str | None:
    """Why a flow's partitions keep the record loop although the batch loop was asked for, or None."""
    if record_filter is not None:
        return "record loop: record.filter set"
    if provenance:
        return "record loop: provenance header enabled"
    if exactly_once:
        return "record loop: exactly-once mode"
    if compression not in ("none", ""):
        return f"record loop: producer.compression.type = {compression}"
    for role, settings in (("source", source), ("target", target)):
        why = batch_refusal(settings)
        if why is not None:
            return f"record loop: the {role} cluster logs in with {why}"
    return None


def chosen_loop(asked: str, record_filter: object, provenance: bool, exactly_once: bool, compression: str,
                source: Mapping[str, str], target: Mapping[str, str]) -> tuple[str, str]:
    """(the loop, why): the one asked for, except `batch` where it cannot serve, which keeps `c`."""
    if asked != "batch":
        return asked, f"mirror.engine.loop = {asked}"
    why = batch_loop_refusal(record_filter, provenance, exactly_once, compression, source, target)
    return ("c", why) if why is not None else ("batch", "mirror.engine.loop = batch")


def flow_loop(asked: str, flow: FlowConfig, source: ClusterConfig, target: ClusterConfig) -> tuple[str, str]:
    """chosen_loop() for a flow of the file, with the connections its relay's clients use."""
    return chosen_loop(asked, flow.record_filter, flow.provenance_header_enabled, flow.exactly_once,
                       flow.producer_compression, role_connection(connection(source), flow.source_consumer),
                       role_connection(connection(target), flow.target_producer))
