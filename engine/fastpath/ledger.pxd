cdef class PartitionLedger:
    cdef int64_t *ring
    # the source timestamps of the records in flight, slot for slot beside ring (-1: none)
    cdef int64_t *stamps
    cdef int64_t capacity, head, count
    cdef public str source_topic, remote_topic
    cdef public int partition
    cdef public bint apply_filter  # heartbeats topics are never filtered
    cdef public int64_t last_acked_source, last_acked_target, last_committed_source
    cdef public int64_t acked_records, acked_value_bytes, sent_records
    # what the worker has already reported, so reports carry deltas
    cdef public int64_t reported_records, reported_value_bytes
    # records a record filter dropped: gaps that progress moves past once earlier records are acked
    cdef public int64_t filtered_records, reported_filtered, pending_filtered
    # the provenance header's value up to the offset (engine.offsets.wire.provenance_prefix), or None
    cdef public bytes provenance_prefix

    # MM2's offset-sync rule (docs/design.md, 'Offset sync'), evaluated on every ack: the previous ack, the
    # downstream offset of the last due sync, the due syncs not yet sent (pairs upstream,
    # downstream), and the delayed slot that each progress store promotes
    cdef int64_t sync_prev_upstream, sync_prev_downstream, sync_last_downstream
    cdef bint sync_started, delayed_valid
    cdef int64_t *due_syncs
    cdef int64_t due_count, due_capacity
    cdef int64_t delayed_upstream, delayed_downstream

    # MM2's source metrics (docs/metrics.md), aggregated here so no Python object is made per
    # record: value bytes of every polled record; record age (now - record timestamp) at poll and
    # replication latency (now - record timestamp) at the target's ack as count, sum, min, max in
    # ms since the last take_timings(), plus the last value; the newest acked record timestamp
    cdef public int64_t polled_value_bytes, reported_polled_value_bytes
    cdef int64_t age_count, age_sum, age_min, age_max, age_last
    cdef int64_t latency_count, latency_sum, latency_min, latency_max, latency_last
    cdef public int64_t newest_acked_timestamp
    cdef int64_t popped_timestamp  # the timestamp of the record pop() returned last

    cdef int push(self, int64_t source_offset, int64_t timestamp) except -1
    cdef int64_t pop(self) except? -2
    cdef void skip(self, int64_t source_offset)
    cdef void polled(self, int64_t value_bytes, int64_t timestamp, int64_t now_ms) noexcept
    cdef void acked_at(self, int64_t now_ms) noexcept
    # the offset map (exact translation): runs of acks where source and target offsets both step
    # by one; a run ends at any gap on either side. Closed runs wait in a list until stored.
    cdef bint run_valid, run_dirty
    cdef int64_t run_first_up, run_first_down, run_last_up, run_last_down
    cdef list closed_runs

    cdef int record_run(self, int64_t upstream, int64_t downstream) except -1
    cdef int record_sync(self, int64_t upstream, int64_t downstream, int64_t offset_lag_max) except -1
    cdef int add_due(self, int64_t upstream, int64_t downstream) except -1
