# cython: language_level=3
"""The worker's per-record work: relay consumed records to the target and account for acks.

What a relayed record keeps (MM2-REFERENCE §3.7):
    source record (topic T, partition P, offset O, timestamp TS, key K, value V, headers H1..Hn)
      -> target record (topic remote(T), partition P, timestamp TS or "now" when TS < 0,
                        key K, value V, headers H1..Hn in order, null values kept)
Offsets are not kept: the target assigns its own. To map a delivery report (which carries only
the target offset) back to its source offset, each target partition keeps a FIFO of the source
offsets in flight, in a C ring buffer: the producer is idempotent, so reports of one partition
arrive in the order the records were produced, and the head of the FIFO is the record acked.

This first version drives confluent-kafka's Python API; the C-API loop replaces it later
behind the same interface (send / on_delivery / ledgers).
"""

from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc, realloc

from time import monotonic

from confluent_kafka import KafkaError, KafkaException

cdef int _PARTITION_EOF = KafkaError._PARTITION_EOF
cdef int _UNKNOWN_PARTITION = KafkaError._UNKNOWN_PARTITION


class DeliveryFailed(RuntimeError):
    """The target refused or lost a record; nothing after the last acked offset is committed."""


class RecordFilterFailed(RuntimeError):
    """The flow's Python record filter raised; the message names the record."""


class SourceReadFailed(RuntimeError):
    """The source consumer reported an error for a partition."""


cdef class PartitionLedger:
    """Per target partition: source offsets in flight, and what the target acknowledged."""

    def __cinit__(self):
        self.capacity = 1024
        self.ring = <int64_t *> malloc(self.capacity * sizeof(int64_t))
        if self.ring == NULL:
            raise MemoryError()
        self.head = 0
        self.count = 0
        self.due_capacity = 16
        self.due_syncs = <int64_t *> malloc(2 * self.due_capacity * sizeof(int64_t))
        if self.due_syncs == NULL:
            raise MemoryError()
        self.due_count = 0

    def __init__(self, str source_topic, str remote_topic, int partition, int64_t last_committed_offset=-1,
                 bint apply_filter=True):
        self.source_topic = source_topic
        self.apply_filter = apply_filter
        self.remote_topic = remote_topic
        self.partition = partition
        self.last_acked_source = last_committed_offset
        self.last_acked_target = -1
        self.last_committed_source = last_committed_offset
        self.acked_records = 0
        self.acked_value_bytes = 0
        self.sent_records = 0
        self.reported_records = 0
        self.reported_value_bytes = 0
        self.filtered_records = 0
        self.reported_filtered = 0
        self.pending_filtered = -1
        self.sync_started = False
        self.sync_prev_upstream = -1
        self.sync_prev_downstream = -1
        self.sync_last_downstream = -1
        self.delayed_valid = False
        self.run_valid = False
        self.run_dirty = False
        self.closed_runs = []

    def __dealloc__(self):
        free(self.ring)
        free(self.due_syncs)

    cdef int push(self, int64_t source_offset) except -1:
        cdef int64_t new_capacity, i
        cdef int64_t *grown
        if self.count == self.capacity:
            new_capacity = self.capacity * 2
            grown = <int64_t *> malloc(new_capacity * sizeof(int64_t))
            if grown == NULL:
                raise MemoryError()
            for i in range(self.count):
                grown[i] = self.ring[(self.head + i) % self.capacity]
            free(self.ring)
            self.ring = grown
            self.head = 0
            self.capacity = new_capacity
        self.ring[(self.head + self.count) % self.capacity] = source_offset
        self.count += 1
        self.sent_records += 1
        return 0

    cdef int64_t pop(self) except? -2:
        cdef int64_t source_offset
        if self.count == 0:
            raise DeliveryFailed(
                f"delivery report for {self.remote_topic}[{self.partition}] with no record in flight"
            )
        source_offset = self.ring[self.head]
        self.head = (self.head + 1) % self.capacity
        self.count -= 1
        return source_offset

    cdef void skip(self, int64_t source_offset):
        """A filtered record: done at once if nothing earlier is in flight, else after those acks."""
        self.filtered_records += 1
        if self.count == 0:
            self.last_acked_source = source_offset
        else:
            self.pending_filtered = source_offset

    cdef int add_due(self, int64_t upstream, int64_t downstream) except -1:
        cdef int64_t *grown
        if self.due_count == self.due_capacity:
            grown = <int64_t *> realloc(self.due_syncs, 4 * self.due_capacity * sizeof(int64_t))
            if grown == NULL:
                raise MemoryError()
            self.due_syncs = grown
            self.due_capacity *= 2
        self.due_syncs[2 * self.due_count] = upstream
        self.due_syncs[2 * self.due_count + 1] = downstream
        self.due_count += 1
        return 0

    cdef int record_sync(self, int64_t upstream, int64_t downstream, int64_t offset_lag_max) except -1:
        cdef bint due = (
            not self.sync_started
            or downstream - (self.sync_last_downstream + 1) >= offset_lag_max
            or upstream - self.sync_prev_upstream != 1  # a gap: compaction, markers, filters, a restart
            or downstream < self.sync_prev_downstream  # the target was truncated
        )
        if due:
            # MM2 keeps one pending slot and so merges syncs when acks come in bursts; a batched
            # loop acks in bursts all the time, so every due sync is kept until it is sent
            self.add_due(upstream, downstream)
            self.delayed_valid = False
            self.sync_last_downstream = downstream
            self.sync_started = True
        else:
            self.delayed_valid = True
            self.delayed_upstream = upstream
            self.delayed_downstream = downstream
        self.sync_prev_upstream = upstream
        self.sync_prev_downstream = downstream
        return 0

    cdef int record_run(self, int64_t upstream, int64_t downstream) except -1:
        if (self.run_valid and upstream == self.run_last_up + 1 and downstream == self.run_last_down + 1):
            self.run_last_up = upstream
            self.run_last_down = downstream
            self.run_dirty = True
            return 0
        if self.run_valid and self.run_dirty:
            self.closed_runs.append((self.run_first_up, self.run_first_down, self.run_last_up, self.run_last_down))
        self.run_valid = True
        self.run_dirty = True
        self.run_first_up = self.run_last_up = upstream
        self.run_first_down = self.run_last_down = downstream
        return 0

    def take_runs(self):
        """[(first upstream, first downstream, last upstream, last downstream)] not yet stored:
        the runs closed since the last call, then the open run if it grew. The open run is
        written again as it grows; the map is compacted by its first offsets."""
        runs = self.closed_runs
        self.closed_runs = []
        if self.run_valid and self.run_dirty:
            runs.append((self.run_first_up, self.run_first_down, self.run_last_up, self.run_last_down))
            self.run_dirty = False
        return runs

    def take_due_syncs(self):
        """[(upstream, downstream)] due for this partition, oldest first; empties the list."""
        cdef int64_t i
        syncs = [(self.due_syncs[2 * i], self.due_syncs[2 * i + 1]) for i in range(self.due_count)]
        self.due_count = 0
        return syncs

    def promote_delayed_sync(self):
        """At each progress store the newest undue sync becomes due (KAFKA-15906)."""
        if self.delayed_valid:
            self.add_due(self.delayed_upstream, self.delayed_downstream)
            self.delayed_valid = False

    @property
    def in_flight(self):
        return self.count

    def uncommitted(self):
        """True when the target acknowledged records not yet stored as progress."""
        return self.last_acked_source > self.last_committed_source


cdef class RecordFilter:
    """A flow's built-in record filter (engine.filters.RecordFilterConfig); keep() per record."""

    def __init__(self, header_present=(), header_absent=(), header_equals=(), key_prefixes=(), python=None):
        self.header_present = tuple(header_present)
        self.header_absent = tuple(header_absent)
        self.header_equals = tuple((name, bytes(value)) for name, value in header_equals)
        self.key_prefixes = tuple(bytes(p) for p in key_prefixes)
        self.python = python

    cdef bint keep(self, object message) except -1:
        cdef object key
        cdef object headers
        cdef object name
        cdef object wanted
        cdef bint found
        if self.key_prefixes:
            key = message.key()
            if key is None or not key.startswith(self.key_prefixes):
                return False
        if self.header_present or self.header_absent or self.header_equals:
            headers = message.headers() or ()
            for name in self.header_present:
                if not _has_header(headers, name):
                    return False
            for name in self.header_absent:
                if _has_header(headers, name):
                    return False
            for name, wanted in self.header_equals:
                found = False
                for header in headers:
                    if header[0] == name and header[1] == wanted:
                        found = True
                        break
                if not found:
                    return False
        if self.python is not None:
            try:
                return bool(self.python(message.topic(), message.partition(), message.key(), message.value(),
                                        message.headers()))
            except Exception as error:
                # stop rather than guess: skipping would lose the record, copying would leak it
                raise RecordFilterFailed(
                    f"record.filter.python raised on {message.topic()}[{message.partition()}]@{message.offset()}: "
                    f"{error!r}") from error
        return True

    def keeps(self, message):
        """keep() for tests and the Python side."""
        return self.keep(message)


cdef inline bint _has_header(object headers, object name):
    for header in headers:
        if header[0] == name:
            return True
    return False


cdef class Relay:
    """Relays batches of consumed messages through one producer and tracks acks per partition.

    Give `relay.on_delivery` to the producer as its `on_delivery` callback.
    """

    def __init__(self):
        self.producer = None
        self.ledgers = {}
        self.remote_topics = {}
        self.failure = None
        self.records_sent = 0
        self.records_acked = 0
        self.record_filter = None
        self.offset_lag_max = -1

    def attach(self, producer):
        self.producer = producer

    def add_partition(self, str source_topic, str remote_topic, int partition, int64_t last_committed_offset=-1,
                      bint apply_filter=True):
        ledger = PartitionLedger(source_topic, remote_topic, partition, last_committed_offset, apply_filter)
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
        cdef int64_t ts
        cdef double unknown_since
        for message in messages:
            err = message.error()
            if err is not None:
                if err.code() == _PARTITION_EOF:
                    continue
                raise SourceReadFailed(
                    f"source topic {message.topic()}[{message.partition()}]: {err.str()}"
                )
            remote = remote_topics[message.topic()]
            partition = message.partition()
            ledger = ledgers[(remote, partition)]
            if ledger.apply_filter and self.record_filter is not None and not self.record_filter.keep(message):
                ledger.skip(message.offset())
                continue
            unknown_since = 0
            ts = message.timestamp()[1]
            if ts < 0:
                ts = 0  # librdkafka: 0 means "now", as MM2 replaces -1 with the producer's clock
            while True:
                try:
                    producer.produce(
                        remote, message.value(), message.key(), partition,
                        timestamp=ts, headers=message.headers(),
                    )
                    break
                except BufferError:
                    # the local queue is full: serve delivery reports, then retry this record
                    producer.poll(0.05)
                    if self.failure is not None:
                        return sent
                except KafkaException as error:
                    if error.args[0].code() == _UNKNOWN_PARTITION and unknown_since == 0:
                        unknown_since = monotonic()
                    if error.args[0].code() == _UNKNOWN_PARTITION and monotonic() - unknown_since < 60:
                        # a partition just added to the remote topic: wait for the producer's
                        # metadata to show it (MM2's producer blocks until it appears)
                        producer.list_topics(remote, timeout=1)
                        producer.poll(0.1)
                        continue
                    raise DeliveryFailed(
                        f"cannot produce {message.topic()}[{partition}]@{message.offset()} "
                        f"to {remote}: {error.args[0].str()}"
                    ) from None
            ledger.push(message.offset())
            sent += 1
        self.records_sent += sent
        return sent

    def on_delivery(self, err, message):
        cdef PartitionLedger ledger = self.ledgers.get((message.topic(), message.partition()))
        cdef int64_t source_offset
        if ledger is None:
            return  # partition revoked while the record was in flight; its progress is not ours
        source_offset = ledger.pop()
        if err is not None:
            if self.failure is None:
                self.failure = DeliveryFailed(
                    f"target refused {ledger.source_topic}[{ledger.partition}]@{source_offset} "
                    f"(as {ledger.remote_topic}): {err.str()}"
                )
            return
        if self.failure is not None:
            return  # after a failure nothing later counts as progress
        ledger.last_acked_source = source_offset
        if ledger.count == 0 and ledger.pending_filtered > source_offset:
            ledger.last_acked_source = ledger.pending_filtered  # filtered records behind the last ack
        ledger.last_acked_target = message.offset()
        if self.offset_lag_max >= 0:
            ledger.record_sync(source_offset, ledger.last_acked_target, self.offset_lag_max)
        ledger.record_run(source_offset, ledger.last_acked_target)
        ledger.acked_records += 1
        ledger.acked_value_bytes += len(message)  # the value's length, without copying the value
        self.records_acked += 1
