cdef class Bookkeeper:
    """What both relay loops account for, one object per relay: the ledgers of the partitions it
    copies, the record filter and the provenance settings, the ack rule (progress, offset syncs,
    offset-map runs, MM2's metrics) and the first failure.

    The loops hold one each (composition): NativeRelay (native_relay.pyx) calls it in C; the Python-API loop
    (engine/worker/python_relay.py) through admit(), sent() and delivered(), one call each a record.
    """

    def __init__(self):
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

    def enable_provenance(self, str source_cluster, str target_cluster):
        """Append a provenance header to every copy and drop records that came from the target."""
        self.provenance_cluster = source_cluster
        self.cycle_cluster = target_cluster.encode()

    def add_partition(self, str source_topic, str remote_topic, int partition, int64_t last_committed_offset=-1,
                      bint apply_filter=True):
        from engine.offsets.wire import provenance_prefix

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

    # -- the Python-API loop's per-record calls ------------------------------------------------------

    cpdef PartitionLedger admit(self, object message, int64_t source_timestamp, int64_t now_ms):
        """A consumed confluent-kafka message: its partition's ledger when the record is to be
        copied; None when the flow skips it (a record-level cycle, the record filter: a gap that
        progress passes) or when its partition is not, or no longer, the relay's (a record
        fetched before the partition was removed: dropped, its progress is not ours)."""
        cdef PartitionLedger ledger
        remote = self.remote_topics.get(message.topic())
        if remote is None:
            return None
        ledger = self.ledgers.get((remote, message.partition()))
        if ledger is None:
            return None
        ledger.polled(len(message), source_timestamp, now_ms)
        if self._filtered(ledger, message):
            ledger.skip(message.offset())
            return None
        return ledger

    cpdef int sent(self, PartitionLedger ledger, int64_t source_offset, int64_t source_timestamp,
                   int64_t size) except -1:
        """The producer took the record: it is in flight; `size` is its key and value bytes."""
        ledger.push(source_offset, source_timestamp)
        self.bytes_sent += size
        return 0

    cpdef int sent_batch(self, PartitionLedger ledger, int64_t base_offset, int64_t count, int64_t timestamp,
                         int64_t size, int64_t value_bytes) except -1:
        """The batch loop handed a record batch to the producer as bytes: its `count` records from base_offset
        are polled and in flight, each with the batch's timestamp and an equal share of `value_bytes` (the
        first takes the remainder); `size` is the batch's bytes (bandwidth limit). One call, no Python per record."""
        cdef int64_t i, now_ms = _now_ms()
        if count <= 0:
            return 0
        for i in range(count):
            ledger.polled(value_bytes // count + (value_bytes % count if i == 0 else 0), timestamp, now_ms)
            ledger.push(base_offset + i, timestamp)
        self.bytes_sent += size
        self.records_sent += count
        return 0

    cpdef int delivered_batch(self, str remote_topic, int partition, int64_t target_offset, int64_t count,
                              int64_t value_bytes) except -1:
        """The target acknowledged a batch the batch loop sent: its `count` oldest records in flight were written
        from target_offset on, one by one; each takes the progress, offset-sync and offset-map rule of delivered()."""
        cdef PartitionLedger ledger = self.ledgers.get((remote_topic, partition))
        cdef int64_t i
        if ledger is None or count <= 0:
            return 0  # partition revoked while the batch was in flight; its progress is not ours
        self.ack_clock_ms = _now_ms()
        for i in range(count):
            self._acked(ledger, ledger.pop(), None, 0, target_offset + i,
                        value_bytes // count + (value_bytes % count if i == 0 else 0))
        return 0

    cpdef int delivered(self, str remote_topic, int partition, int64_t target_offset, int64_t value_bytes,
                        str error, int error_code) except -1:
        """A delivery report: the oldest record in flight of remote_topic[partition] was written at
        target_offset, or failed with `error` (then target_offset is -1)."""
        cdef PartitionLedger ledger = self.ledgers.get((remote_topic, partition))
        if ledger is None:
            return 0  # partition revoked while the record was in flight; its progress is not ours
        self.ack_clock_ms = _now_ms()
        return self._acked(ledger, ledger.pop(), error, error_code, target_offset, value_bytes)

    cdef bint _filtered(self, PartitionLedger ledger, object message) except -1:
        if self.cycle_cluster is not None and _wire_came_from(message.headers(), self.cycle_cluster):
            return True
        return ledger.apply_filter and self.record_filter is not None and not self.record_filter.keep(message)

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
