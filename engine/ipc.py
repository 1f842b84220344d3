"""Coordinator <-> worker messages: msgspec structs, one JSON document per line.

The coordinator writes to a worker's stdin, the worker answers on its stdout. A worker whose
stdin closes (its coordinator is gone) flushes, stores progress and exits: no orphans.
"""

from __future__ import annotations

import msgspec

from engine.filters import RecordFilterConfig


class PartitionTask(msgspec.Struct, frozen=True, order=True):
    topic: str
    partition: int
    remote_topic: str
    # record filters skip heartbeats topics: dropping beats would hide the flow's topology
    apply_filter: bool = True


class Assign(msgspec.Struct, tag="assign", frozen=True):
    """Replace the worker's partitions with these (the first Assign starts it)."""

    flow: str
    source_alias: str
    target_alias: str
    worker_index: int
    partitions: list[PartitionTask]
    source_client: dict[str, str]
    target_client: dict[str, str]
    offsets_topic: str
    offset_flush_interval_ms: int
    poll_timeout_ms: int
    report_interval_ms: int = 1000
    record_filter: RecordFilterConfig | None = None
    # MM2 offset syncs: where they go (None: emit.offset-syncs.enabled = false)
    offset_syncs_topic: str | None = None
    offset_syncs_client: dict[str, str] = {}
    offset_syncs_role: str = "offset-syncs-source-producer"
    offset_lag_max: int = 100
    loop: str = "c"  # "c" or "python" (mirror.engine.loop)
    compression: str = "none"  # the target producer's compression.type
    provenance: bool = False  # append a provenance header to every copy
    bandwidth_limit_bytes_per_s: int = 0  # this worker's share of the flow's budget; 0: none
    # exactly-once mode: the worker's transactional.id, the same for every start of this worker
    transactional_id: str | None = None
    # the smallest max.message.bytes of the flow's remote topics when the worker started
    max_message_bytes: int | None = None
    # the configuration's secrets: the worker's log lines print them as [hidden]
    secrets: list[str] = []
    # the flow's client overrides in librdkafka's names (A.consumer.*, B.producer.*, ...)
    consumer_overrides: dict[str, str] = {}
    producer_overrides: dict[str, str] = {}
    # counts the worker's assignments; its reports carry the one they describe, so the coordinator
    # knows when the previous partitions were drained and their progress stored
    generation: int = 0
    # scale-out: the worker copies only while its coordinator renews this lease (see Lease); 0: no lease
    lease_s: float = 0.0
    # the lease holds from the start (false: the coordinator's membership is in doubt; wait for a Lease)
    leased: bool = True
    # at-least-once: resume after the copies the target already holds (engine/worker/resume.py); off
    # where the engine is not the only writer of its remote topics (the identity policy)
    resume_from_target: bool = False


class Lease(msgspec.Struct, tag="lease", frozen=True):
    """Scale-out: go on copying for Assign.lease_s more seconds. The coordinator renews it while its
    group membership holds; a worker whose lease ran out (its coordinator frozen or cut off from
    the group) stops copying before another instance can take its partitions over."""


class Stop(msgspec.Struct, tag="stop", frozen=True):
    """Flush, store progress, exit 0."""


class Timings(msgspec.Struct, frozen=True, array_like=True):
    """Millisecond values a worker recorded in one report interval, aggregated in the fast path:
    their count, sum, min, max and the last of them (meaningful only when count > 0; a record
    timestamp ahead of the clock gives a negative value, which MM2 records as it is too)."""

    count: int = 0
    sum_ms: int = 0
    min_ms: int = 0
    max_ms: int = 0
    last_ms: int = -1


class PartitionProgress(msgspec.Struct, frozen=True):
    topic: str
    partition: int
    last_acked_offset: int  # last source offset the target acknowledged
    last_committed_offset: int  # last source offset stored as progress
    records_delta: int  # acked since the previous report
    value_bytes_delta: int
    filtered_delta: int  # records a record filter dropped since the previous report
    in_flight: int
    source_end_offset: int  # the source's high watermark as last fetched, -1 if unknown
    # MM2's source metrics (docs/metrics.md): value bytes polled (byte-count), now - record
    # timestamp at poll (record-age-ms) and at the target's ack (replication-latency-ms)
    polled_value_bytes_delta: int = 0
    record_age: Timings = Timings()
    replication_latency: Timings = Timings()
    newest_acked_timestamp_ms: int = -1  # the newest record timestamp the target acknowledged
    # at the worker's start (engine/worker/resume.py): copies found on the target past the stored
    # progress (not copied again), and target records past it that could not be matched (copied
    # again: duplicates, unless another producer wrote them)
    resume_found_delta: int = 0
    resume_unmatched_delta: int = 0


class Report(msgspec.Struct, tag="report", frozen=True):
    worker_index: int
    interval_s: float  # time covered by the deltas
    partitions: list[PartitionProgress]
    generation: int = 0  # of the Assign whose partitions these are


class Failed(msgspec.Struct, tag="failed", frozen=True):
    """The worker stopped on an error it cannot recover from; the text names the culprit."""

    worker_index: int
    error: str
    # set when the error is one partition's own (engine._fastpath.PartitionFailed): that
    # partition stops alone, the worker goes on without it
    topic: str | None = None
    partition: int | None = None


ToWorker = Assign | Lease | Stop
FromWorker = Report | Failed

_encoder = msgspec.json.Encoder()
to_worker_decoder = msgspec.json.Decoder(ToWorker)
from_worker_decoder = msgspec.json.Decoder(FromWorker)


def encode_line(message: msgspec.Struct) -> bytes:
    return _encoder.encode(message) + b"\n"
