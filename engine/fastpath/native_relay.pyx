cdef class TopicRoute:
    """A source topic on the C path: its remote topic's producer handle and ledgers by partition.

    The route is the remote topic handle's opaque, so a delivery report finds its ledger without a
    lookup by name.
    """
    def __dealloc__(self):
        self.release()

    cdef void release(self) noexcept:
        """Gives back the remote topic handle; only while its producer lives (NativeRelay._destroy)."""
        if self.remote != NULL:
            rd_kafka_topic_destroy(self.remote)
            self.remote = NULL


cdef class NativeRelay:
    """The worker's loop on librdkafka's C API: owns the source consumer and the target producer.

    Configs are librdkafka properties (strings); progress, filters and offset syncs go through its
    Bookkeeper, as the Python loop's do. Logs of both clients are queued and written by pump().
    """

    def __cinit__(self):
        self.consumer = NULL
        self.producer = NULL
        self.batch = NULL
        self.last_handle = NULL

    def __init__(self, dict consumer_config, dict producer_config, int batch_size=2000,
                 str source_cluster="source", str target_cluster="target"):
        self.bookkeeper = Bookkeeper()
        self.routes = {}
        self.routes_by_handle = {}
        self.control_in_flight = 0
        self.source_cluster = source_cluster
        self.target_cluster = target_cluster
        self.batch_size = batch_size
        self.batch = <rd_kafka_message_t **> malloc(batch_size * sizeof(rd_kafka_message_t *))
        if self.batch == NULL:
            raise MemoryError()
        self.consumer = _new_client(RD_KAFKA_CONSUMER, consumer_config, source_cluster)
        self.producer = _new_client(RD_KAFKA_PRODUCER, producer_config, target_cluster)
        rd_kafka_poll_set_consumer(self.consumer)
        self.consumer_queue = rd_kafka_queue_get_consumer(self.consumer)
        self.producer_queue = rd_kafka_queue_get_main(self.producer)
        self.log_queue = rd_kafka_queue_new(self.consumer)
        rd_kafka_set_log_queue(self.consumer, self.log_queue)
        rd_kafka_set_log_queue(self.producer, self.log_queue)

    def __dealloc__(self):
        self._destroy()

    cdef void _destroy(self) noexcept:
        # the remote topic handles go before the producer that made them: destroying one after it
        # locks freed memory (a worker then spins at exit, never ending)
        if self.routes is not None:
            for route in self.routes.values():
                (<TopicRoute> route).release()
        self.routes = None
        self.routes_by_handle = None
        self.last_route = None
        if self.log_queue != NULL:
            rd_kafka_queue_destroy(self.log_queue)
            self.log_queue = NULL
        if self.consumer_queue != NULL:
            rd_kafka_queue_destroy(self.consumer_queue)
            self.consumer_queue = NULL
        if self.producer_queue != NULL:
            rd_kafka_queue_destroy(self.producer_queue)
            self.producer_queue = NULL
        if self.consumer != NULL:
            with nogil:
                rd_kafka_destroy(self.consumer)
            self.consumer = NULL
        if self.producer != NULL:
            with nogil:
                rd_kafka_destroy(self.producer)
            self.producer = NULL
        free(self.batch)
        self.batch = NULL

    def close(self):
        """Leaves the source (nothing is committed to its group) and frees both clients.

        Records still in flight are purged: their delivery reports free the consumed messages."""
        if self.producer != NULL:
            with nogil:
                rd_kafka_purge(self.producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT)
            failure = self.bookkeeper.failure
            self._serve(100)
            self.bookkeeper.failure = failure  # purge reports are no new failure
        if self.consumer != NULL:
            with nogil:
                rd_kafka_consumer_close(self.consumer)
        self._drain_logs()
        self._destroy()

    # -- partitions --------------------------------------------------------------------------------

    def add_partition(self, str source_topic, str remote_topic, int partition, int64_t last_committed_offset=-1,
                      bint apply_filter=True):
        cdef TopicRoute route = self.routes.get(source_topic)
        ledger = self.bookkeeper.add_partition(source_topic, remote_topic, partition, last_committed_offset,
                                               apply_filter)
        if route is None:
            route = TopicRoute()
            route.source_topic = source_topic
            route.remote_topic = remote_topic
            route.ledgers = []
            self.routes[source_topic] = route
        while len(route.ledgers) <= partition:
            route.ledgers.append(None)
        route.ledgers[partition] = ledger
        return ledger

    def remove_partition(self, str remote_topic, int partition):
        cdef TopicRoute route
        ledger = self.bookkeeper.remove_partition(remote_topic, partition)
        route = self.routes.get(ledger.source_topic)
        if route is not None:
            route.ledgers[partition] = None  # reports still in flight for it free their records only
        return ledger

    cdef int _check_open(self, str what) except -1:
        if self.consumer == NULL:  # close() freed it
            raise SourceReadFailed(f"cannot {what} on cluster {self.source_cluster}: the relay is closed")
        return 0

    def assign(self, list positions):
        """[(topic, partition, offset)]: replaces what the consumer reads; offset -2 = earliest."""
        cdef rd_kafka_topic_partition_list_t *partitions
        cdef rd_kafka_resp_err_t err
        self._check_open("assign partitions")
        partitions = rd_kafka_topic_partition_list_new(len(positions) or 1)
        # the consumer's topic handles may be freed and their addresses reused once unassigned
        self.routes_by_handle.clear()
        self.last_handle = NULL
        for topic, partition, offset in positions:
            rd_kafka_topic_partition_list_add(partitions, topic.encode(), partition).offset = offset
        with nogil:
            err = rd_kafka_assign(self.consumer, partitions if positions else NULL)
        rd_kafka_topic_partition_list_destroy(partitions)
        if err:
            raise SourceReadFailed(f"cannot assign partitions on cluster {self.source_cluster}: "
                                   f"{rd_kafka_err2str(err).decode()}")

    def positions(self, list partitions):
        """[(topic, partition)] -> [next offset to read or -1001 when unknown (not assigned)]."""
        cdef rd_kafka_topic_partition_list_t *wanted
        cdef rd_kafka_resp_err_t err
        cdef int i
        self._check_open("read positions")
        wanted = rd_kafka_topic_partition_list_new(len(partitions) or 1)
        for topic, partition in partitions:
            rd_kafka_topic_partition_list_add(wanted, topic.encode(), partition)
        err = rd_kafka_position(self.consumer, wanted)
        result = [wanted.elems[i].offset for i in range(wanted.cnt)]
        rd_kafka_topic_partition_list_destroy(wanted)
        if err:
            raise SourceReadFailed(f"cannot read positions on cluster {self.source_cluster}: "
                                   f"{rd_kafka_err2str(err).decode()}")
        return result

    def source_watermarks(self, str topic, int partition, double timeout_s=10.0):
        """(log start, end) of a source partition, asked of the broker."""
        cdef int64_t low = -1, high = -1
        cdef bytes name = topic.encode()
        cdef const char *c_name = name
        cdef rd_kafka_resp_err_t err
        cdef int timeout_ms = <int> (timeout_s * 1000)
        self._check_open("read watermarks")
        with nogil:
            err = rd_kafka_query_watermark_offsets(self.consumer, c_name, partition, &low, &high, timeout_ms)
        if err:
            raise SourceReadFailed(f"cannot read the log start and end of source {topic}[{partition}] on cluster "
                                   f"{self.source_cluster}: {rd_kafka_err2str(err).decode()}")
        return (low, high)

    def high_watermark(self, str topic, int partition):
        """The source's high watermark from the last fetch response (no request); -1 if unknown."""
        cdef int64_t low = -1, high = -1
        self._check_open("read watermarks")
        if rd_kafka_get_watermark_offsets(self.consumer, topic.encode(), partition, &low, &high):
            return -1
        return high

    # -- the loop --------------------------------------------------------------------------------

    def pump(self, int timeout_ms):
        """Consumes one batch (waiting up to timeout_ms), produces it, serves delivery reports.
        Returns the number of records consumed."""
        cdef ssize_t count, more
        # wait for one record only, then take what is already fetched: a batch never waits to fill
        # up (consume_batch_queue would hold the first record until the batch is full or timed out)
        with nogil:
            count = rd_kafka_consume_batch_queue(self.consumer_queue, timeout_ms, self.batch, 1)
            if count == 1:
                more = rd_kafka_consume_batch_queue(self.consumer_queue, 0, self.batch + 1, self.batch_size - 1)
                if more > 0:
                    count += more
        if count > 0:
            self._send_batch(count)
        self._serve(0)
        self._drain_logs()
        return max(count, 0)

    def serve(self, int timeout_ms):
        """Delivery reports only (waiting up to timeout_ms for the first)."""
        self._serve(timeout_ms)
        self._drain_logs()

    def flush(self, double timeout_s):
        """Waits until every record in flight is acknowledged or failed; returns how many remain."""
        deadline = monotonic() + timeout_s
        while (self.bookkeeper.in_flight() or self.control_in_flight) and monotonic() < deadline:
            self._serve(100)
        self._drain_logs()
        return self.bookkeeper.in_flight() + self.control_in_flight

    def produce_record(self, str topic, int partition, key, value):
        """One record of the engine's own (progress, offset map) through the relay's producer, so
        that in exactly-once mode it joins the open transaction. partition -1: by the key."""
        cdef rd_kafka_vu_t values[6]
        cdef rd_kafka_error_t *error
        cdef bytes topic_name = topic.encode()
        cdef bytes key_bytes = key
        cdef bytes value_bytes = value
        values[0].vtype = RD_KAFKA_VTYPE_TOPIC
        values[0].u.cstr = topic_name
        values[1].vtype = RD_KAFKA_VTYPE_PARTITION
        values[1].u.i32 = partition
        values[2].vtype = RD_KAFKA_VTYPE_KEY
        values[2].u.mem.ptr = NULL if key_bytes is None else <void *> PyBytes_AS_STRING(key_bytes)
        values[2].u.mem.size = 0 if key_bytes is None else len(key_bytes)
        values[3].vtype = RD_KAFKA_VTYPE_VALUE
        values[3].u.mem.ptr = NULL if value_bytes is None else <void *> PyBytes_AS_STRING(value_bytes)
        values[3].u.mem.size = 0 if value_bytes is None else len(value_bytes)
        values[4].vtype = RD_KAFKA_VTYPE_MSGFLAGS
        values[4].u.i = RD_KAFKA_MSG_F_COPY
        values[5].vtype = RD_KAFKA_VTYPE_OPAQUE
        values[5].u.ptr = NULL  # no consumed record behind it
        while True:
            error = rd_kafka_produceva(self.producer, values, 6)
            if error == NULL:
                self.control_in_flight += 1
                return
            code = rd_kafka_error_code(error)
            reason = rd_kafka_error_string(error).decode()
            rd_kafka_error_destroy(error)
            if code != RD_KAFKA_RESP_ERR__QUEUE_FULL:
                raise DeliveryFailed(f"cannot write {topic} on cluster {self.target_cluster}: {reason}")
            self._serve(50)

    # -- exactly-once mode -------------------------------------------------------------------------

    def init_transactions(self, double timeout_s):
        """Registers the transactional.id, fencing any older producer that has it."""
        cdef rd_kafka_error_t *error
        cdef int timeout_ms = <int> (timeout_s * 1000)
        with nogil:
            error = rd_kafka_init_transactions(self.producer, timeout_ms)
        self._check_transaction(error, "initialise transactions")

    def begin_transaction(self):
        self._check_transaction(rd_kafka_begin_transaction(self.producer), "begin a transaction")

    def commit_transaction(self, double timeout_s):
        """Every record produced since begin_transaction() must be acknowledged (flush) first."""
        cdef rd_kafka_error_t *error
        cdef int timeout_ms = <int> (timeout_s * 1000)
        with nogil:
            error = rd_kafka_commit_transaction(self.producer, timeout_ms)
        self._check_transaction(error, "commit a transaction")

    def abort_transaction(self, double timeout_s):
        cdef rd_kafka_error_t *error
        cdef int timeout_ms = <int> (timeout_s * 1000)
        with nogil:
            error = rd_kafka_abort_transaction(self.producer, timeout_ms)
        self._serve(0)  # the aborted records' reports free their consumed records
        self._check_transaction(error, "abort a transaction")

    cdef int _check_transaction(self, rd_kafka_error_t *error, str what) except -1:
        if error == NULL:
            return 0
        fatal = bool(rd_kafka_error_is_fatal(error))
        reason = rd_kafka_error_string(error).decode("utf-8", "replace")
        rd_kafka_error_destroy(error)
        raise TransactionFailed(f"cannot {what} on cluster {self.target_cluster}: {reason}", fatal)

    cdef int _send_batch(self, ssize_t count) except -1:
        cdef ssize_t i = 0
        cdef int sent = 0
        cdef int64_t now_ms = _now_ms()  # the batch's poll time: record-age-ms
        try:
            while i < count:
                if self.bookkeeper.failure is not None:
                    break
                i += 1  # _send_one frees or hands over the record, also when it raises
                sent += self._send_one(self.batch[i - 1], now_ms)
        finally:
            while i < count:  # not handed to the producer: ours to free
                rd_kafka_message_destroy(self.batch[i])
                i += 1
        self.bookkeeper.records_sent += sent
        return 0

    cdef PartitionLedger _ledger(self, rd_kafka_message_t *m):
        """The ledger of a consumed record's partition, or None when the partition is not, or no
        longer, this relay's (removed while its records were fetched, or never added)."""
        cdef TopicRoute route
        cdef object ledger
        cdef size_t handle
        # records of a batch come in runs of one partition: compare the handle, no lookup
        if m.rkt == self.last_handle and m.rkt != NULL:
            route = self.last_route
        else:
            handle = <size_t> m.rkt
            route = self.routes_by_handle.get(handle)
            if route is None:
                route = self.routes.get(rd_kafka_topic_name(m.rkt).decode())
                if route is None:
                    return None
                self.routes_by_handle[handle] = route
            self.last_handle = m.rkt
            self.last_route = route
        if m.partition < 0 or m.partition >= len(route.ledgers):
            return None
        ledger = route.ledgers[m.partition]
        return <PartitionLedger> ledger if ledger is not None else None

    cdef int _send_one(self, rd_kafka_message_t *m, int64_t now_ms) except -1:
        """1 if the producer took the record (freed at its delivery report), 0 if it was freed here."""
        cdef TopicRoute route
        cdef PartitionLedger ledger
        cdef rd_kafka_headers_t *headers = NULL
        cdef rd_kafka_timestamp_type_t timestamp_type
        cdef rd_kafka_vu_t values[7]
        cdef rd_kafka_error_t *error
        cdef rd_kafka_resp_err_t code
        cdef size_t value_count = 6
        cdef char provenance[PROVENANCE_MAX]
        cdef int64_t timestamp, source_timestamp
        cdef double unknown_since = 0
        if m.err:
            err = m.err
            if err == RD_KAFKA_RESP_ERR__PARTITION_EOF:
                rd_kafka_message_destroy(m)
                return 0
            reason = f"{rd_kafka_err2str(err).decode()} " + (
                (<char *> m.payload)[:m.len].decode("utf-8", "replace") if m.payload != NULL else "")
            topic = rd_kafka_topic_name(m.rkt).decode() if m.rkt != NULL else None
            partition, offset = m.partition, m.offset
            rd_kafka_message_destroy(m)
            if topic is None:
                raise SourceReadFailed(f"source cluster {self.source_cluster}: {reason.rstrip()}")
            raise source_error(self.bookkeeper.flow_name, self.source_cluster, topic, partition, err, reason.rstrip(),
                               offset, lambda: self.source_watermarks(topic, partition))
        ledger = self._ledger(m)
        if ledger is None:
            rd_kafka_message_destroy(m)  # not ours: its progress is not either
            return 0
        route = self.last_route
        if route.remote == NULL:
            self._open_remote(route, m)
        source_timestamp = rd_kafka_message_timestamp(m, &timestamp_type)
        ledger.polled(m.len if m.payload != NULL else 0, source_timestamp, now_ms)
        try:
            if self.bookkeeper.cycle_cluster is not None:
                rd_kafka_message_headers(m, &headers)
                if _came_from(headers, self.bookkeeper.cycle_cluster):
                    ledger.skip(m.offset)
                    rd_kafka_message_destroy(m)
                    return 0
            if ledger.apply_filter and self.bookkeeper.record_filter is not None \
                    and not self.bookkeeper.record_filter.keep_native(m, route.source_topic):
                ledger.skip(m.offset)
                rd_kafka_message_destroy(m)
                return 0
        except BaseException:
            rd_kafka_message_destroy(m)
            raise
        headers = NULL
        # the consumed headers move to the copy: no copy of them either
        if rd_kafka_message_detach_headers(m, &headers) != RD_KAFKA_RESP_ERR_NO_ERROR:
            headers = NULL
        if ledger.provenance_prefix is not None:
            if headers == NULL:
                headers = rd_kafka_headers_new(1)
            rd_kafka_header_add(headers, PyBytes_AS_STRING(_PROVENANCE_NAME), -1, provenance,
                                _provenance_into(provenance, ledger.provenance_prefix, m.offset))
        timestamp = source_timestamp
        if timestamp < 0:
            timestamp = 0  # librdkafka: 0 means "now", as MM2 replaces -1 with the producer's clock
        values[0].vtype = RD_KAFKA_VTYPE_RKT
        values[0].u.rkt = route.remote
        values[1].vtype = RD_KAFKA_VTYPE_PARTITION
        values[1].u.i32 = m.partition
        values[2].vtype = RD_KAFKA_VTYPE_VALUE
        values[2].u.mem.ptr = m.payload  # NULL stays a null value, a 0-length buffer an empty one
        values[2].u.mem.size = m.len
        values[3].vtype = RD_KAFKA_VTYPE_KEY
        values[3].u.mem.ptr = m.key
        values[3].u.mem.size = m.key_len
        values[4].vtype = RD_KAFKA_VTYPE_OPAQUE
        values[4].u.ptr = <void *> m  # freed when its delivery report arrives
        values[5].vtype = RD_KAFKA_VTYPE_TIMESTAMP
        values[5].u.i64 = timestamp
        if headers != NULL:
            values[6].vtype = RD_KAFKA_VTYPE_HEADERS
            values[6].u.headers = headers
            value_count = 7
        while True:
            error = rd_kafka_produceva(self.producer, values, value_count)
            if error == NULL:
                break
            code = rd_kafka_error_code(error)
            reason = rd_kafka_error_string(error).decode()
            rd_kafka_error_destroy(error)
            if code == RD_KAFKA_RESP_ERR__QUEUE_FULL:
                # the local queue is full: serve delivery reports, then retry this record
                self._serve(50)
                if self.bookkeeper.failure is None:
                    continue
            elif code == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
                # a partition just added to the remote topic: wait for the producer's metadata to
                # show it (MM2's producer blocks until it appears)
                if unknown_since == 0:
                    unknown_since = monotonic()
                if monotonic() - unknown_since < UNKNOWN_PARTITION_WAIT_S:
                    self._refresh_metadata(route)
                    self._serve(100)
                    continue
            if headers != NULL:
                rd_kafka_headers_destroy(headers)  # still ours when produce fails
            offset = m.offset
            rd_kafka_message_destroy(m)
            if self.bookkeeper.failure is not None:
                return 0
            raise produce_failed(self.bookkeeper.flow_name, route.source_topic, ledger.partition, offset,
                                 ledger.remote_topic, f" on cluster {self.target_cluster}", code, reason)
        ledger.push(m.offset, source_timestamp)
        self.bookkeeper.bytes_sent += m.len + m.key_len
        return 1

    cdef int _open_remote(self, TopicRoute route, rd_kafka_message_t *m) except -1:
        cdef rd_kafka_topic_conf_t *topic_conf = rd_kafka_default_topic_conf_dup(self.producer)  # acks etc.
        rd_kafka_topic_conf_set_opaque(topic_conf, <void *> route)
        route.remote = rd_kafka_topic_new(self.producer, route.remote_topic.encode(), topic_conf)
        if route.remote == NULL:
            rd_kafka_message_destroy(m)
            raise DeliveryFailed(f"cannot open remote topic {route.remote_topic} on cluster {self.target_cluster}")
        return 0

    cdef void _refresh_metadata(self, TopicRoute route):
        cdef const rd_kafka_metadata_t *metadata = NULL
        with nogil:
            if rd_kafka_metadata(self.producer, 0, route.remote, &metadata, 1000) == 0:
                rd_kafka_metadata_destroy(metadata)

    cdef int _serve(self, int timeout_ms) except -1:
        """Serves the producer's events: delivery reports in batches, and errors."""
        cdef rd_kafka_event_t *event
        with nogil:
            event = rd_kafka_queue_poll(self.producer_queue, timeout_ms)
        while event != NULL:
            try:
                kind = rd_kafka_event_type(event)
                if kind == RD_KAFKA_EVENT_DR:
                    self._on_delivery_reports(event)
                elif kind == RD_KAFKA_EVENT_ERROR:
                    message = (f"producer for cluster {self.target_cluster}: "
                               f"{rd_kafka_event_error_string(event).decode('utf-8', 'replace')}")
                    if rd_kafka_event_error_is_fatal(event):
                        if self.bookkeeper.failure is None:
                            self.bookkeeper.failure = DeliveryFailed(message)
                    else:
                        _librdkafka_log.warning("%s", message)
            finally:
                rd_kafka_event_destroy(event)
            event = rd_kafka_queue_poll(self.producer_queue, 0)
        return 0

    cdef int _on_delivery_reports(self, rd_kafka_event_t *event) except -1:
        cdef const rd_kafka_message_t *acks[ACKS_PER_CALL]
        cdef const rd_kafka_message_t *ack
        cdef rd_kafka_message_t *source
        cdef size_t count, i
        cdef TopicRoute route
        cdef object ledger
        cdef int64_t source_offset
        while True:
            count = rd_kafka_event_message_array(event, acks, ACKS_PER_CALL)
            if count == 0:
                return 0
            self.bookkeeper.ack_clock_ms = _now_ms()  # one clock reading per batch of reports
            for i in range(count):
                ack = acks[i]
                source = <rd_kafka_message_t *> ack._private
                if source == NULL:  # produce_record(): no ledger, no consumed record
                    self.control_in_flight -= 1
                    if ack.err and self.bookkeeper.failure is None:
                        self.bookkeeper.failure = DeliveryFailed(
                            f"writing {rd_kafka_topic_name(ack.rkt).decode()} on cluster {self.target_cluster} "
                            f"failed: {rd_kafka_err2str(ack.err).decode()}")
                    continue
                try:
                    route = <TopicRoute> rd_kafka_topic_opaque(ack.rkt)
                    ledger = route.ledgers[ack.partition] if ack.partition < len(route.ledgers) else None
                    if ledger is None:
                        continue  # partition revoked while the record was in flight
                    source_offset = (<PartitionLedger> ledger).pop()
                    if source_offset != source.offset and self.bookkeeper.failure is None:
                        self.bookkeeper.failure = DeliveryFailed(
                            f"delivery report for {route.source_topic}[{ack.partition}]@{source.offset} "
                            f"arrived out of order (expected @{source_offset})")
                    self.bookkeeper._acked(<PartitionLedger> ledger, source_offset,
                                           rd_kafka_err2str(ack.err).decode() if ack.err else None, ack.err,
                                           ack.offset, ack.len)
                finally:
                    rd_kafka_message_destroy(source)

    cdef void _drain_logs(self):
        cdef rd_kafka_event_t *event
        cdef const char *facility
        cdef const char *text
        cdef int level
        if self.log_queue == NULL:
            return
        event = rd_kafka_queue_poll(self.log_queue, 0)
        while event != NULL:
            if rd_kafka_event_log(event, &facility, &text, &level) == 0:
                # syslog levels: 0-3 errors, 4 warning, 5-6 notice/info, 7 debug
                _librdkafka_log.log(
                    logging.ERROR if level <= 3 else logging.WARNING if level == 4
                    else logging.INFO if level <= 6 else logging.DEBUG,
                    "%s %s", facility.decode("utf-8", "replace"), text.decode("utf-8", "replace"))
            rd_kafka_event_destroy(event)
            event = rd_kafka_queue_poll(self.log_queue, 0)
