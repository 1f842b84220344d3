cdef class TopicRoute:
    cdef str source_topic, remote_topic
    cdef rd_kafka_topic_t *remote  # opened at the first record, when the producer has brokers
    cdef list ledgers  # by partition; None where the partition was removed

    cdef void release(self) noexcept


cdef class NativeRelay:
    cdef readonly Bookkeeper bookkeeper  # ledgers, filter, provenance, the ack rule
    cdef rd_kafka_t *consumer
    cdef rd_kafka_t *producer
    cdef rd_kafka_queue_t *consumer_queue
    cdef rd_kafka_queue_t *producer_queue
    cdef rd_kafka_queue_t *log_queue
    cdef rd_kafka_message_t **batch
    cdef int batch_size
    cdef dict routes  # source topic -> TopicRoute
    cdef dict routes_by_handle  # address of the consumer's topic handle -> TopicRoute
    cdef str source_cluster, target_cluster
    cdef int64_t control_in_flight  # produce_record() writes not yet acknowledged
    cdef rd_kafka_topic_t *last_handle  # the consumer's topic handle of the previous record
    cdef TopicRoute last_route  # the route of last_handle

    cdef void _destroy(self) noexcept
    cdef int _check_transaction(self, rd_kafka_error_t *error, str what) except -1
    cdef int _send_batch(self, ssize_t count) except -1
    cdef PartitionLedger _ledger(self, rd_kafka_message_t *m)
    cdef int _check_open(self, str what) except -1
    cdef int _send_one(self, rd_kafka_message_t *m, int64_t now_ms) except -1
    cdef int _open_remote(self, TopicRoute route, rd_kafka_message_t *m) except -1
    cdef void _refresh_metadata(self, TopicRoute route)
    cdef int _serve(self, int timeout_ms) except -1
    cdef int _on_delivery_reports(self, rd_kafka_event_t *event) except -1
    cdef void _drain_logs(self)
