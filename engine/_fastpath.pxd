from libc.stdint cimport int64_t


cdef class PartitionLedger:
    cdef int64_t *ring
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

    cdef int push(self, int64_t source_offset) except -1
    cdef int64_t pop(self) except? -2
    cdef void skip(self, int64_t source_offset)


cdef class RecordFilter:
    cdef tuple header_present, header_absent, header_equals, key_prefixes
    cdef object python

    cdef bint keep(self, object message) except -1


cdef class Relay:
    cdef object producer
    cdef public RecordFilter record_filter
    cdef public dict ledgers
    cdef dict remote_topics
    cdef public object failure
    cdef public int64_t records_sent, records_acked
