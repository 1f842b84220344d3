cdef class Relay:
    """Relays batches of consumed messages through one producer and tracks acks per partition.

    This is the Python-API loop: give `relay.on_delivery` to the producer as its `on_delivery`.
    """

    def __init__(self):
        self.producer = None
        self.ledgers = {}
        self.remote_topics = {}
        self.failure = None
        self.records_sent = 0
        self.records_acked = 0
        self.flow_name = "<flow>"
        self.failed_size = 0
        self.failed_ledger = None
        self.bytes_sent = 0
        self.record_filter = None
        self.offset_lag_max = -1
        self.provenance_cluster = None
        self.cycle_cluster = None
        self.ack_clock_ms = 0

    def attach(self, producer):
        self.producer = producer

    def enable_provenance(self, str source_cluster, str target_cluster):
        """Append a provenance header to every copy and drop records that came from the target."""
        self.provenance_cluster = source_cluster
        self.cycle_cluster = target_cluster.encode()

    def add_partition(self, str source_topic, str remote_topic, int partition, int64_t last_committed_offset=-1,
                      bint apply_filter=True):
        from engine.wire import provenance_prefix

        ledger = PartitionLedger(source_topic, remote_topic, partition, last_committed_offset, apply_filter)
        if self.provenance_cluster is not None:
            ledger.provenance_prefix = provenance_prefix(self.provenance_cluster, source_topic, partition)
        self.ledgers[(remote_topic, partition)] = ledger
        self.remote_topics[source_topic] = remote_topic
        return ledger

    def remove_partition(self, str remote_topic, int partition):
        return self.ledgers.pop((remote_topic, partition))

    def take_offset_syncs(self):
        """[(source topic, partition, upstream, downstream)] due now, oldest first per partition."""
        cdef PartitionLedger ledger
        syncs = []
        for ledger in self.ledgers.values():
            if ledger.due_count:
                syncs.extend((ledger.source_topic, ledger.partition, up, down) for up, down in ledger.take_due_syncs())
        return syncs

    def take_offset_runs(self):
        """[(source topic, partition, first up, first down, last up, last down)] to store."""
        cdef PartitionLedger ledger
        runs = []
        for ledger in self.ledgers.values():
            if ledger.closed_runs or ledger.run_dirty:
                runs.extend((ledger.source_topic, ledger.partition) + run for run in ledger.take_runs())
        return runs

    def promote_delayed_syncs(self):
        cdef PartitionLedger ledger
        for ledger in self.ledgers.values():
            ledger.promote_delayed_sync()

    def in_flight(self):
        cdef PartitionLedger ledger
        cdef int64_t total = 0
        for ledger in self.ledgers.values():
            total += ledger.count
        return total

    cdef bint _filtered(self, PartitionLedger ledger, object message) except -1:
        cdef bytes origin = self.cycle_cluster
        if self.cycle_cluster is not None and message.headers():
            for name, value in message.headers():
                if name == PROVENANCE_HEADER and value is not None and len(value) >= 4 + len(origin) \
                        and int.from_bytes(value[2:4], "big") == len(origin) and value[4:4 + len(origin)] == origin:
                    return True
        return ledger.apply_filter and self.record_filter is not None and not self.record_filter.keep(message)

    def send(self, list messages):
        """Produces every record of the batch; returns how many were handed to the producer."""
        cdef PartitionLedger ledger
        cdef int sent = 0
        cdef object producer = self.producer
        cdef dict ledgers = self.ledgers
        cdef dict remote_topics = self.remote_topics
        cdef object err
        cdef str remote
        cdef int partition
        cdef int64_t ts, source_ts
        cdef int64_t now_ms = _now_ms()  # one clock reading per batch, as the C loop
        cdef double unknown_since
        for message in messages:
            err = message.error()
            if err is not None:
                if err.code() == _PARTITION_EOF:
                    continue
                if message.topic() is None:
                    raise SourceReadFailed(f"source cluster: {err.str()}")
                raise source_error(self.flow_name, getattr(self, "source_alias", "source"), message.topic(), message.partition(), err.code(), err.str(),
                                   message.offset() if message.offset() is not None else -1,
                                   lambda: self.source_watermarks(message.topic(), message.partition()))
            remote = remote_topics[message.topic()]
            partition = message.partition()
            ledger = ledgers[(remote, partition)]
            source_ts = message.timestamp()[1]
            ledger.polled(len(message), source_ts, now_ms)
            if self._filtered(ledger, message):
                ledger.skip(message.offset())
                continue
            headers = message.headers()
            if ledger.provenance_prefix is not None:
                headers = (headers or []) + [(PROVENANCE_HEADER,
                                              ledger.provenance_prefix + message.offset().to_bytes(8, "big"))]
            unknown_since = 0
            ts = source_ts
            if ts < 0:
                ts = 0  # librdkafka: 0 means "now", as MM2 replaces -1 with the producer's clock
            while True:
                try:
                    producer.produce(remote, message.value(), message.key(), partition, timestamp=ts, headers=headers)
                    break
                except BufferError:
                    # the local queue is full: serve delivery reports, then retry this record
                    producer.poll(0.05)
                    if self.failure is not None:
                        return sent
                except KafkaException as error:
                    if error.args[0].code() == _UNKNOWN_PARTITION and unknown_since == 0:
                        unknown_since = monotonic()
                    if error.args[0].code() == _UNKNOWN_PARTITION and monotonic() - unknown_since < UNKNOWN_PARTITION_WAIT_S:
                        # a partition just added to the remote topic: wait for the producer's
                        # metadata to show it (MM2's producer blocks until it appears)
                        producer.list_topics(remote, timeout=1)
                        producer.poll(0.1)
                        continue
                    code = error.args[0].code()
                    raise DeliveryFailed(
                        f"cannot produce {message.topic()}[{partition}]@{message.offset()} "
                        f"to {remote}: {error.args[0].str()}{_skip_hint(self.flow_name, code, message.topic(), partition, message.offset())}",
                        message.topic() if code in _RECORD_ERRORS else None,
                        partition if code in _RECORD_ERRORS else None) from None
            ledger.push(message.offset(), source_ts)
            self.bytes_sent += len(message) + (len(message.key()) if message.key() is not None else 0)
            sent += 1
        self.records_sent += sent
        return sent

    def on_delivery(self, err, message):
        cdef PartitionLedger ledger = self.ledgers.get((message.topic(), message.partition()))
        if ledger is None:
            return  # partition revoked while the record was in flight; its progress is not ours
        self.ack_clock_ms = _now_ms()
        if err is None:
            self._acked(ledger, ledger.pop(), None, 0, message.offset(), len(message))
        else:  # a failed report has no target offset
            self._acked(ledger, ledger.pop(), err.str(), err.code(), -1, len(message))

    def source_watermarks(self, str topic, int partition):
        """(log start, end) of a source partition, asked of the broker."""
        raise NotImplementedError

    cdef int _acked(self, PartitionLedger ledger, int64_t source_offset, str error, int error_code,
                    int64_t target_offset, int64_t value_bytes) except -1:
        """One delivery report, in produce order per partition: the progress and offset-map rule."""
        if error is not None:
            record_error = error_code in _RECORD_ERRORS
            # the broker refuses a whole batch for one oversized record: name the largest of them
            if self.failure is None or (error_code == _MSG_SIZE_TOO_LARGE and value_bytes > self.failed_size
                                        and getattr(self.failure, "partition", None) == ledger.partition
                                        and getattr(self.failure, "topic", None) == ledger.source_topic):
                self.failed_size = value_bytes
                self.failed_ledger = ledger if record_error else None
                self.failure = DeliveryFailed(
                    f"target refused {ledger.source_topic}[{ledger.partition}]@{source_offset} "
                    f"(as {ledger.remote_topic}, {value_bytes} value bytes): {error}"
                    f"{_skip_hint(self.flow_name, error_code, ledger.source_topic, ledger.partition, source_offset)}",
                    ledger.source_topic if record_error else None, ledger.partition if record_error else None)
            return 0
        if self.failure is not None and (self.failed_ledger is None or self.failed_ledger is ledger):
            # past a refused record nothing counts as progress: in its partition, or everywhere when
            # the failure is the link's; the other partitions' acks still count after a record error
            return 0
        ledger.last_acked_source = source_offset
        if ledger.count == 0 and ledger.pending_filtered > source_offset:
            ledger.last_acked_source = ledger.pending_filtered  # filtered records behind the last ack
        ledger.last_acked_target = target_offset
        if self.offset_lag_max >= 0:
            ledger.record_sync(source_offset, target_offset, self.offset_lag_max)
        ledger.record_run(source_offset, target_offset)
        ledger.acked_records += 1
        ledger.acked_value_bytes += value_bytes
        ledger.acked_at(self.ack_clock_ms)
        self.records_acked += 1
        return 0

