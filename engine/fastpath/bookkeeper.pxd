cdef class Bookkeeper:
    cdef public RecordFilter record_filter
    cdef public dict ledgers  # (remote topic, partition) -> PartitionLedger
    cdef dict remote_topics  # source topic -> remote topic
    cdef public object failure  # the first error; the worker raises it after the batch
    cdef public int64_t records_sent, records_acked
    cdef public int64_t bytes_sent  # keys and values handed to the producer (bandwidth limit)
    cdef public int64_t offset_lag_max  # -1: no offset syncs (emit.offset-syncs.enabled = false)
    # provenance headers: this hop's origin cluster, and the target's name to stop cycles at
    cdef public str provenance_cluster
    cdef public bytes cycle_cluster
    cdef int64_t failed_size  # value bytes of the record the current failure names
    cdef object failed_ledger  # the partition of a record error; None: every partition stops
    cdef public str flow_name  # named in errors, e.g. A->B
    cdef int64_t ack_clock_ms  # wall clock of the delivery reports being served (replication latency)

    cpdef PartitionLedger admit(self, object message, int64_t source_timestamp, int64_t now_ms)
    cpdef int sent(self, PartitionLedger ledger, int64_t source_offset, int64_t source_timestamp,
                   int64_t size) except -1
    cpdef int sent_batch(self, PartitionLedger ledger, int64_t base_offset, int64_t count, int64_t timestamp,
                         int64_t size, int64_t value_bytes) except -1
    cpdef int delivered_batch(self, str remote_topic, int partition, int64_t target_offset, int64_t count,
                              int64_t value_bytes) except -1
    cpdef int delivered(self, str remote_topic, int partition, int64_t target_offset, int64_t value_bytes,
                        str error, int error_code) except -1
    cdef bint _filtered(self, PartitionLedger ledger, object message) except -1
    cdef int _acked(self, PartitionLedger ledger, int64_t source_offset, str error, int error_code,
                    int64_t target_offset, int64_t value_bytes) except -1
