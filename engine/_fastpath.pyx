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
Beside each source offset the FIFO keeps the record's timestamp: MM2's metrics (MM2-REFERENCE §8)
are aggregated in the ledger, per report interval, without a Python object per record — value
bytes and record age (now - timestamp) when a batch is polled, replication latency (now -
timestamp) when the target acknowledges; one clock reading per batch of records or of reports.

Two loops share the ledgers, the filter and the ack bookkeeping:
  NativeRelay  the worker's loop on librdkafka's C API: batches consumed from the consumer queue
               are produced without copying keys, values or headers (the consumed message stays
               alive until its delivery report, then both are freed); delivery reports arrive as
               batched events. No Python object per record unless a Python record filter asks.
  Relay        the same over confluent-kafka's Python API: `mirror.engine.loop = python`, the
               benchmarks' in-run baseline and the differential tests' reference.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.ref cimport PyObject
from libc.stdint cimport int32_t, int64_t
from posix.time cimport CLOCK_REALTIME, clock_gettime, timespec
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcmp, memcpy, strcmp

from engine._librdkafka cimport *

import logging
from time import monotonic

from confluent_kafka import KafkaError, KafkaException

from engine.wire import PROVENANCE_HEADER

_librdkafka_log = logging.getLogger("librdkafka")
cdef bytes _PROVENANCE_NAME = PROVENANCE_HEADER.encode()
# a provenance value: INT16 version, STRING cluster, STRING topic (<= 249 B), INT32, INT64
DEF PROVENANCE_MAX = 2 + 2 + 32767 + 2 + 255 + 4 + 8
DEF ACKS_PER_CALL = 512
DEF UNKNOWN_PARTITION_WAIT_S = 60.0

cdef int _PARTITION_EOF = KafkaError._PARTITION_EOF


cdef inline int64_t _now_ms() noexcept nogil:
    """The wall clock in ms, as record timestamps and MM2's System.currentTimeMillis() count."""
    cdef timespec now
    clock_gettime(CLOCK_REALTIME, &now)
    return <int64_t> now.tv_sec * 1000 + now.tv_nsec // 1000000


def wall_clock_ms():
    """The clock the record-age and latency aggregates use, for tests."""
    return _now_ms()
cdef int _UNKNOWN_PARTITION = KafkaError._UNKNOWN_PARTITION


class PartitionFailed(RuntimeError):
    """An error; with `topic` and `partition` set, one that only that source partition has (a
    record the target refuses, records lost to retention): the coordinator stops that partition
    alone and retries it at the next topic refresh."""

    def __init__(self, message: str, topic: str | None = None, partition: int | None = None):
        super().__init__(message)
        self.topic = topic
        self.partition = partition


class DeliveryFailed(PartitionFailed):
    """The target refused or lost a record; nothing after the last acked offset is committed."""


class RecordFilterFailed(PartitionFailed):
    """The flow's Python record filter raised; the message names the record."""


class TransactionFailed(RuntimeError):
    """A transaction of the exactly-once mode failed; `fatal` when the producer cannot go on
    (fenced by a newer instance with the same transactional.id, or a fatal idempotence error)."""

    def __init__(self, message: str, fatal: bool):
        super().__init__(message)
        self.fatal = fatal


class SourceReadFailed(PartitionFailed):
    """The source consumer reported an error for a partition."""


# errors that belong to one record or one partition, not to the link or the cluster
_MSG_SIZE_TOO_LARGE = KafkaError.MSG_SIZE_TOO_LARGE
_RECORD_ERRORS = frozenset((KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_RECORD, KafkaError.INVALID_MSG,
                            KafkaError.RECORD_LIST_TOO_LARGE, KafkaError.INVALID_TIMESTAMP,
                            KafkaError.TOPIC_AUTHORIZATION_FAILED))
_AUTO_OFFSET_RESET = KafkaError._AUTO_OFFSET_RESET


def source_error(str flow, str cluster, str topic, int partition, int code, str reason, int64_t offset, watermarks):
    """The exception for a consumer error on one partition. `watermarks()` -> (log start, end) is
    asked only when the position fell out of the log: retention outran the copy (MM2 would jump
    to the earliest offset without a word) or the topic was recreated."""
    if code == _AUTO_OFFSET_RESET:
        low, high = watermarks()
        if 0 <= offset < low:
            return SourceReadFailed(
                f"source {topic}[{partition}] on cluster {cluster}: records {offset}..{low - 1} were deleted "
                f"(retention) before they were copied; nothing past them is copied. To accept the loss and go on "
                f"from the log start: mirror-engine skip <config> --flow {flow} --topic {topic} "
                f"--partition {partition} --past {low - 1}", topic, partition)
        return SourceReadFailed(
            f"source {topic}[{partition}] on cluster {cluster}: position {offset} is outside the log "
            f"({low}..{high}); was the topic deleted and created again? {reason}", topic, partition)
    return SourceReadFailed(f"source {topic}[{partition}] on cluster {cluster}: {reason}",
                            topic if code in _RECORD_ERRORS else None, partition if code in _RECORD_ERRORS else None)


cdef class PartitionLedger:
    """Per target partition: source offsets in flight, and what the target acknowledged."""

    def __cinit__(self):
        self.capacity = 1024
        self.ring = <int64_t *> malloc(self.capacity * sizeof(int64_t))
        self.stamps = <int64_t *> malloc(self.capacity * sizeof(int64_t))
        if self.ring == NULL or self.stamps == NULL:
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
        self.polled_value_bytes = 0
        self.reported_polled_value_bytes = 0
        self.age_count = self.age_sum = self.age_min = self.age_max = 0
        self.age_last = -1
        self.latency_count = self.latency_sum = self.latency_min = self.latency_max = 0
        self.latency_last = -1
        self.newest_acked_timestamp = -1
        self.popped_timestamp = -1

    def __dealloc__(self):
        free(self.ring)
        free(self.stamps)
        free(self.due_syncs)

    cdef int push(self, int64_t source_offset, int64_t timestamp) except -1:
        cdef int64_t new_capacity, i, slot
        cdef int64_t *grown
        cdef int64_t *grown_stamps
        if self.count == self.capacity:
            new_capacity = self.capacity * 2
            grown = <int64_t *> malloc(new_capacity * sizeof(int64_t))
            grown_stamps = <int64_t *> malloc(new_capacity * sizeof(int64_t))
            if grown == NULL or grown_stamps == NULL:
                free(grown)
                free(grown_stamps)
                raise MemoryError()
            for i in range(self.count):
                slot = (self.head + i) % self.capacity
                grown[i] = self.ring[slot]
                grown_stamps[i] = self.stamps[slot]
            free(self.ring)
            free(self.stamps)
            self.ring = grown
            self.stamps = grown_stamps
            self.head = 0
            self.capacity = new_capacity
        slot = (self.head + self.count) % self.capacity
        self.ring[slot] = source_offset
        self.stamps[slot] = timestamp
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
        self.popped_timestamp = self.stamps[self.head]
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

    cdef void polled(self, int64_t value_bytes, int64_t timestamp, int64_t now_ms) noexcept:
        """A consumed record, before any filter (MM2 measures in poll(), before its SMTs): byte-count
        counts its value bytes, record-age-ms takes now - its timestamp (none without one)."""
        cdef int64_t age
        self.polled_value_bytes += value_bytes
        if timestamp < 0:
            return
        age = now_ms - timestamp
        if self.age_count == 0 or age < self.age_min:
            self.age_min = age
        if self.age_count == 0 or age > self.age_max:
            self.age_max = age
        self.age_count += 1
        self.age_sum += age
        self.age_last = age

    cdef void acked_at(self, int64_t now_ms) noexcept:
        """The record pop() returned was acknowledged and counted: replication-latency-ms takes
        now - its timestamp, as MM2 does in commitRecord()."""
        cdef int64_t timestamp = self.popped_timestamp, latency
        if timestamp < 0:
            return
        if timestamp > self.newest_acked_timestamp:
            self.newest_acked_timestamp = timestamp
        latency = now_ms - timestamp
        if self.latency_count == 0 or latency < self.latency_min:
            self.latency_min = latency
        if self.latency_count == 0 or latency > self.latency_max:
            self.latency_max = latency
        self.latency_count += 1
        self.latency_sum += latency
        self.latency_last = latency

    def take_timings(self):
        """((count, sum, min, max, last) of record age, the same of replication latency), in ms,
        recorded since the previous call, which starts a new interval; the last values stay (-1
        before the first)."""
        timings = ((self.age_count, self.age_sum, self.age_min, self.age_max, self.age_last),
                   (self.latency_count, self.latency_sum, self.latency_min, self.latency_max, self.latency_last))
        self.age_count = self.age_sum = self.age_min = self.age_max = 0
        self.latency_count = self.latency_sum = self.latency_min = self.latency_max = 0
        return timings

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
    """A flow's built-in record filter (engine.filters.RecordFilterConfig).

    One rule for both loops: keep() reads a confluent-kafka message, keep_native() a librdkafka
    message; both end in _passes(), which sees the key as bytes and headers through _has_header().
    """

    def __init__(self, header_present=(), header_absent=(), header_equals=(), key_prefixes=(), python=None):
        self.header_present = tuple((name, name.encode()) for name in header_present)
        self.header_absent = tuple((name, name.encode()) for name in header_absent)
        self.header_equals = tuple((name, name.encode(), bytes(value)) for name, value in header_equals)
        self.key_prefixes = tuple(bytes(p) for p in key_prefixes)
        self.python = python
        self.needs_headers = bool(self.header_present or self.header_absent or self.header_equals)

    cdef bint _passes(self, const char *key, Py_ssize_t key_len, object py_headers,
                      const rd_kafka_headers_t *c_headers) except -1:
        cdef bytes prefix
        cdef bint matched
        if self.key_prefixes:
            if key == NULL:
                return False
            matched = False
            for prefix in self.key_prefixes:
                if key_len >= len(prefix) and memcmp(key, PyBytes_AS_STRING(prefix), len(prefix)) == 0:
                    matched = True
                    break
            if not matched:
                return False
        for name, name_b in self.header_present:
            if not _has_header(py_headers, c_headers, name, name_b, None):
                return False
        for name, name_b in self.header_absent:
            if _has_header(py_headers, c_headers, name, name_b, None):
                return False
        for name, name_b, wanted in self.header_equals:
            if not _has_header(py_headers, c_headers, name, name_b, wanted):
                return False
        return True

    cdef bint keep(self, object message) except -1:
        cdef bytes key = message.key()
        headers = message.headers() if self.needs_headers else None
        if not self._passes(NULL if key is None else PyBytes_AS_STRING(key), 0 if key is None else len(key),
                            headers or (), NULL):
            return False
        if self.python is not None:
            return self._ask_python(message.topic(), message.partition(), message.offset(), key,
                                    message.value(), message.headers())
        return True

    cdef bint keep_native(self, rd_kafka_message_t *m, str topic) except -1:
        cdef rd_kafka_headers_t *headers = NULL
        if self.needs_headers or self.python is not None:
            rd_kafka_message_headers(m, &headers)  # NULL when the record has none
        if not self._passes(<const char *> m.key, m.key_len, (), headers):
            return False
        if self.python is not None:
            return self._ask_python(
                topic, m.partition, m.offset,
                None if m.key == NULL else PyBytes_FromStringAndSize(<char *> m.key, m.key_len),
                None if m.payload == NULL else PyBytes_FromStringAndSize(<char *> m.payload, m.len),
                _python_headers(headers))
        return True

    cdef bint _ask_python(self, str topic, int partition, int64_t offset, key, value, headers) except -1:
        try:
            return bool(self.python(topic, partition, key, value, headers))
        except Exception as error:
            # stop rather than guess: skipping would lose the record, copying would leak it
            raise RecordFilterFailed(
                f"record.filter.python raised on {topic}[{partition}]@{offset}: {error!r}") from error

    def keeps(self, message):
        """keep() for tests and the Python side."""
        return self.keep(message)


cdef bint _has_header(object py_headers, const rd_kafka_headers_t *c_headers, str name, bytes name_b,
                      object wanted) except -1:
    """Whether a header `name` (with value `wanted`, unless None) is there, in either form."""
    cdef size_t index = 0, size
    cdef const char *header_name
    cdef const void *value
    if c_headers != NULL:
        while rd_kafka_header_get_all(c_headers, index, &header_name, &value, &size) == 0:
            index += 1
            if strcmp(header_name, PyBytes_AS_STRING(name_b)) != 0:
                continue
            if wanted is None:
                return True
            if value != NULL and <Py_ssize_t> size == len(wanted) and memcmp(value, PyBytes_AS_STRING(wanted), size) == 0:
                return True
        return False
    for header in py_headers:
        if header[0] == name and (wanted is None or header[1] == wanted):
            return True
    return False


cdef list _python_headers(const rd_kafka_headers_t *headers):
    """confluent-kafka's form [(name, value)] of a librdkafka header list; None when empty."""
    cdef size_t index = 0, size
    cdef const char *name
    cdef const void *value
    if headers == NULL:
        return None
    result = []
    while rd_kafka_header_get_all(headers, index, &name, &value, &size) == 0:
        index += 1
        result.append((name.decode("utf-8", "replace"),
                       None if value == NULL else PyBytes_FromStringAndSize(<const char *> value, size)))
    return result or None


cdef bint _came_from(const rd_kafka_headers_t *headers, bytes cluster) except -1:
    """Whether a provenance header names `cluster` as an origin: copying the record there would
    close a record-level cycle (two clusters replicating each other under the identity policy)."""
    cdef size_t index = 0, size, cluster_len = len(cluster)
    cdef const char *name
    cdef const unsigned char *value
    if headers == NULL:
        return False
    while rd_kafka_header_get_all(headers, index, &name, <const void **> &value, &size) == 0:
        index += 1
        if strcmp(name, PyBytes_AS_STRING(_PROVENANCE_NAME)) != 0 or value == NULL or size < 4:
            continue
        # INT16 version, then the cluster STRING: INT16 length + UTF-8
        if ((value[2] << 8) | value[3]) == cluster_len and size >= 4 + cluster_len \
                and memcmp(value + 4, PyBytes_AS_STRING(cluster), cluster_len) == 0:
            return True
    return False


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


def _skip_hint(str flow, int code, str topic, int partition, int64_t offset):
    if code not in _RECORD_ERRORS:
        return ""
    if code == KafkaError.TOPIC_AUTHORIZATION_FAILED:
        # every record of the partition would be refused alike: skipping one would only lose it
        return (". The partition stops here and is retried at each topic refresh; the engine's principal needs "
                "an ALLOW WRITE ACL on the remote topic (see `mirror-engine acls`)")
    return (f". The partition stops here and is retried at each topic refresh; to leave this record out: "
            f"mirror-engine skip <config> --flow {flow} --topic {topic} --partition {partition} --past {offset}")


cdef class TopicRoute:
    """A source topic on the C path: its remote topic's producer handle and ledgers by partition.

    The route is the remote topic handle's opaque, so a delivery report finds its ledger without a
    lookup by name.
    """
    cdef str source_topic, remote_topic
    cdef rd_kafka_topic_t *remote  # opened at the first record, when the producer has brokers
    cdef list ledgers

    def __dealloc__(self):
        self.release()

    cdef void release(self) noexcept:
        """Gives back the remote topic handle; only while its producer lives (NativeRelay._destroy)."""
        if self.remote != NULL:
            rd_kafka_topic_destroy(self.remote)
            self.remote = NULL


cdef class NativeRelay(Relay):
    """The worker's loop on librdkafka's C API: owns the source consumer and the target producer.

    Configs are librdkafka properties (strings); progress, filters and offset syncs go through the
    same ledgers as the Python loop. Logs of both clients are queued and written by pump().
    """
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
    cdef TopicRoute last_route

    def __cinit__(self):
        self.consumer = NULL
        self.producer = NULL
        self.batch = NULL
        self.last_handle = NULL

    def __init__(self, dict consumer_config, dict producer_config, int batch_size=2000,
                 str source_cluster="source", str target_cluster="target"):
        Relay.__init__(self)
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
            failure = self.failure
            self._serve(100)
            self.failure = failure  # purge reports are no new failure
        if self.consumer != NULL:
            with nogil:
                rd_kafka_consumer_close(self.consumer)
        self._drain_logs()
        self._destroy()

    # -- partitions --------------------------------------------------------------------------------

    def add_partition(self, str source_topic, str remote_topic, int partition, int64_t last_committed_offset=-1,
                      bint apply_filter=True):
        cdef TopicRoute route = self.routes.get(source_topic)
        ledger = Relay.add_partition(self, source_topic, remote_topic, partition, last_committed_offset, apply_filter)
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
        ledger = Relay.remove_partition(self, remote_topic, partition)
        route = self.routes.get(ledger.source_topic)
        if route is not None:
            route.ledgers[partition] = None  # reports still in flight for it free their records only
        return ledger

    def assign(self, list positions):
        """[(topic, partition, offset)]: replaces what the consumer reads; offset -2 = earliest."""
        cdef rd_kafka_topic_partition_list_t *partitions = rd_kafka_topic_partition_list_new(len(positions) or 1)
        cdef rd_kafka_resp_err_t err
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
        """[(topic, partition)] -> [next offset to read or -1001 when unknown]."""
        cdef rd_kafka_topic_partition_list_t *wanted = rd_kafka_topic_partition_list_new(len(partitions) or 1)
        cdef int i
        for topic, partition in partitions:
            rd_kafka_topic_partition_list_add(wanted, topic.encode(), partition)
        rd_kafka_position(self.consumer, wanted)
        result = [wanted.elems[i].offset for i in range(wanted.cnt)]
        rd_kafka_topic_partition_list_destroy(wanted)
        return result

    def source_watermarks(self, str topic, int partition):
        cdef int64_t low = -1, high = -1
        cdef bytes name = topic.encode()
        cdef const char *c_name = name
        cdef rd_kafka_resp_err_t err
        with nogil:
            err = rd_kafka_query_watermark_offsets(self.consumer, c_name, partition, &low, &high, 10000)
        return (low, high)

    def high_watermark(self, str topic, int partition):
        """The source's high watermark from the last fetch response (no request); -1 if unknown."""
        cdef int64_t low = -1, high = -1
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
        while (self.in_flight() or self.control_in_flight) and monotonic() < deadline:
            self._serve(100)
        self._drain_logs()
        return self.in_flight() + self.control_in_flight

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
                if self.failure is not None:
                    break
                i += 1  # _send_one frees or hands over the record, also when it raises
                sent += self._send_one(self.batch[i - 1], now_ms)
        finally:
            while i < count:  # not handed to the producer: ours to free
                rd_kafka_message_destroy(self.batch[i])
                i += 1
        self.records_sent += sent
        return 0

    cdef TopicRoute _route(self, rd_kafka_message_t *m):
        # records of a batch come in runs of one partition: compare the handle, no lookup
        if m.rkt == self.last_handle and m.rkt != NULL:
            return self.last_route
        cdef size_t handle = <size_t> m.rkt
        route = self.routes_by_handle.get(handle)
        if route is None:
            topic = rd_kafka_topic_name(m.rkt).decode()
            route = self.routes[topic]
            self.routes_by_handle[handle] = route
        self.last_handle = m.rkt
        self.last_route = <TopicRoute> route
        return self.last_route

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
        cdef Py_ssize_t prefix_len
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
            raise source_error(self.flow_name, self.source_cluster, topic, partition, err, reason.rstrip(), offset,
                               lambda: self.source_watermarks(topic, partition))
        route = self._route(m)
        ledger = <PartitionLedger> route.ledgers[m.partition]
        if route.remote == NULL:
            self._open_remote(route, m)
        source_timestamp = rd_kafka_message_timestamp(m, &timestamp_type)
        ledger.polled(m.len if m.payload != NULL else 0, source_timestamp, now_ms)
        try:
            if self.cycle_cluster is not None:
                rd_kafka_message_headers(m, &headers)
                if _came_from(headers, self.cycle_cluster):
                    ledger.skip(m.offset)
                    rd_kafka_message_destroy(m)
                    return 0
            if ledger.apply_filter and self.record_filter is not None \
                    and not self.record_filter.keep_native(m, route.source_topic):
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
            prefix_len = PyBytes_GET_SIZE(ledger.provenance_prefix)
            memcpy(provenance, PyBytes_AS_STRING(ledger.provenance_prefix), prefix_len)
            _put_int64(provenance + prefix_len, m.offset)
            rd_kafka_header_add(headers, PyBytes_AS_STRING(_PROVENANCE_NAME), -1, provenance, prefix_len + 8)
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
                if self.failure is None:
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
            if self.failure is not None:
                return 0
            record_error = code in _RECORD_ERRORS
            raise DeliveryFailed(
                f"cannot produce {route.source_topic}[{ledger.partition}]@{offset} "
                f"to {ledger.remote_topic} on cluster {self.target_cluster}: {reason}"
                f"{_skip_hint(self.flow_name, code, route.source_topic, ledger.partition, offset)}",
                route.source_topic if record_error else None, ledger.partition if record_error else None)
        ledger.push(m.offset, source_timestamp)
        self.bytes_sent += m.len + m.key_len
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
                        if self.failure is None:
                            self.failure = DeliveryFailed(message)
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
            self.ack_clock_ms = _now_ms()  # one clock reading per batch of reports
            for i in range(count):
                ack = acks[i]
                source = <rd_kafka_message_t *> ack._private
                if source == NULL:  # produce_record(): no ledger, no consumed record
                    self.control_in_flight -= 1
                    if ack.err and self.failure is None:
                        self.failure = DeliveryFailed(
                            f"writing {rd_kafka_topic_name(ack.rkt).decode()} on cluster {self.target_cluster} "
                            f"failed: {rd_kafka_err2str(ack.err).decode()}")
                    continue
                try:
                    route = <TopicRoute> rd_kafka_topic_opaque(ack.rkt)
                    ledger = route.ledgers[ack.partition] if ack.partition < len(route.ledgers) else None
                    if ledger is None:
                        continue  # partition revoked while the record was in flight
                    source_offset = (<PartitionLedger> ledger).pop()
                    if source_offset != source.offset and self.failure is None:
                        self.failure = DeliveryFailed(
                            f"delivery report for {route.source_topic}[{ack.partition}]@{source.offset} "
                            f"arrived out of order (expected @{source_offset})")
                    self._acked(<PartitionLedger> ledger, source_offset,
                                rd_kafka_err2str(ack.err).decode() if ack.err else None, ack.err, ack.offset,
                                ack.len)
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


cdef inline void _put_int64(char *out, int64_t value) noexcept:
    cdef int i
    for i in range(8):
        out[7 - i] = <char> ((value >> (8 * i)) & 0xff)


_SECRET_WORDS = ("password", "secret", "jaas", "token", "key.pem", "private")


cdef rd_kafka_t *_new_client(rd_kafka_type_t kind, dict config, str cluster) except NULL:
    """A librdkafka client from string properties; a refused property is named, its value only
    when it is no secret."""
    cdef char errstr[512]
    cdef rd_kafka_conf_t *conf = rd_kafka_conf_new()
    cdef rd_kafka_t *client
    role = "producer" if kind == RD_KAFKA_PRODUCER else "consumer"
    settings = dict(config)
    settings["log.queue"] = "true"  # logs are written by the loop's thread, never by librdkafka's
    for name, value in settings.items():
        if rd_kafka_conf_set(conf, str(name).encode(), str(value).encode(), errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK:
            rd_kafka_conf_destroy(conf)
            shown = "<redacted>" if any(word in name for word in _SECRET_WORDS) else repr(value)
            raise ValueError(f"{role} for cluster {cluster}: {name} = {shown} refused: {errstr.decode()}")
    if kind == RD_KAFKA_PRODUCER:
        rd_kafka_conf_set_events(conf, RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR)
    with nogil:
        client = rd_kafka_new(kind, conf, errstr, sizeof(errstr))  # owns conf from here on success
    if client == NULL:
        rd_kafka_conf_destroy(conf)  # still ours when rd_kafka_new fails
        raise ValueError(f"cannot create the {role} for cluster {cluster}: {errstr.decode()}")
    return client
