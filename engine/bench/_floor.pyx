# cython: language_level=3
"""The floor: what librdkafka alone costs to consume and to produce the benchmark's records.

Two passes, each run in a process of its own (engine/bench/floor.py) so that /proc counts it alone:

  consume_pass  reads N records of the source topic with the engine's consumer settings and its
                batching (rd_kafka_consume_batch_queue: wait for one record, then take what is
                fetched, up to the batch size), and frees each message; nothing else.
  produce_pass  reads the same records a chunk at a time (a few MiB, so that they are still in the
                CPU's cache when produced, as the C loop's are) with nothing assigned in between,
                and produces each chunk to the target exactly as NativeRelay._send_one does
                (rd_kafka_produceva with the remote topic handle, partition, value, key, the
                consumed message as opaque, its timestamp and its detached headers; no copy),
                serves the batched delivery events as NativeRelay._serve does, and frees each
                consumed message at its report. Only the producing of each chunk, until its last
                report, is measured.

Neither pass holds a Python object per record: the difference between a replicator's CPU per
record and the sum of the two passes is the replicator's own work. `mark(name)` is called at the
start and at the end of each measured part; the caller reads the process's CPU from /proc there.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport int32_t, int64_t
from libc.stdio cimport snprintf
from libc.stdlib cimport free, malloc

from engine._librdkafka cimport *

DEF ACKS_PER_CALL = 512


# the engine's client factory itself (log.queue on, delivery reports as batched events)
include "fastpath/clients.pxi"


cdef void _drain(rd_kafka_queue_t *queue) noexcept nogil:
    cdef rd_kafka_event_t *event = rd_kafka_queue_poll(queue, 0)
    while event != NULL:
        rd_kafka_event_destroy(event)
        event = rd_kafka_queue_poll(queue, 0)


cdef class _Consumer:
    """A consumer assigned to every partition of a topic from its beginning."""
    cdef rd_kafka_t *rk
    cdef rd_kafka_queue_t *queue
    cdef rd_kafka_queue_t *logs
    cdef rd_kafka_topic_partition_list_t *assignment

    def __cinit__(self, dict config, str topic, int partitions):
        cdef int p
        self.rk = _new_client(RD_KAFKA_CONSUMER, config, "source")
        rd_kafka_poll_set_consumer(self.rk)
        self.queue = rd_kafka_queue_get_consumer(self.rk)
        self.logs = rd_kafka_queue_new(self.rk)
        rd_kafka_set_log_queue(self.rk, self.logs)
        self.assignment = rd_kafka_topic_partition_list_new(partitions)
        for p in range(partitions):
            rd_kafka_topic_partition_list_add(self.assignment, topic.encode(), p).offset = RD_KAFKA_OFFSET_BEGINNING
        err = rd_kafka_assign(self.rk, self.assignment)
        if err:
            raise RuntimeError(f"cannot assign {topic}: {rd_kafka_err2str(err).decode()}")

    cdef int assign_from(self, int64_t *offsets) except -1:
        """Fetches every partition again from offsets[partition]; NULL: fetches nothing. An
        assignment, not a pause: a paused partition's pending replies hold rd_kafka_destroy forever."""
        cdef rd_kafka_resp_err_t err
        cdef int p
        if offsets != NULL:
            for p in range(self.assignment.cnt):
                self.assignment.elems[p].offset = offsets[p]
        with nogil:
            err = rd_kafka_assign(self.rk, self.assignment if offsets != NULL else NULL)
        if err:
            raise RuntimeError(f"cannot assign: {rd_kafka_err2str(err).decode()}")
        return 0

    cdef ssize_t batch(self, rd_kafka_message_t **into, int size, int timeout_ms) noexcept nogil:
        """NativeRelay.pump's read: one record waited for, then what is already fetched."""
        cdef ssize_t count, more
        count = rd_kafka_consume_batch_queue(self.queue, timeout_ms, into, 1)
        if count == 1 and size > 1:
            more = rd_kafka_consume_batch_queue(self.queue, 0, into + 1, size - 1)
            if more > 0:
                count += more
        _drain(self.logs)
        return count

    def close(self):
        cdef rd_kafka_message_t *left[256]
        cdef ssize_t count, i
        if self.rk != NULL:
            with nogil:
                rd_kafka_assign(self.rk, NULL)
                # records still queued hold references that would keep rd_kafka_destroy waiting
                count = rd_kafka_consume_batch_queue(self.queue, 100, left, 256)
                while count > 0:
                    for i in range(count):
                        rd_kafka_message_destroy(left[i])
                    count = rd_kafka_consume_batch_queue(self.queue, 0, left, 256)
                rd_kafka_consumer_close(self.rk)
                rd_kafka_queue_destroy(self.queue)
                rd_kafka_queue_destroy(self.logs)
                rd_kafka_destroy(self.rk)
            rd_kafka_topic_partition_list_destroy(self.assignment)
            self.rk = NULL


cdef str _message_error(rd_kafka_message_t *m):
    reason = rd_kafka_err2str(m.err).decode()
    if m.payload != NULL:
        reason += " " + (<char *> m.payload)[:m.len].decode("utf-8", "replace")
    return f"partition {m.partition} at offset {m.offset}: {reason}"


def consume_pass(dict config, str topic, int partitions, int64_t records, int batch_size, int poll_ms,
                 mark, double timeout_s=600.0):
    """Reads `records` records and frees them; mark("start") at the first record, mark("end")
    after the last. Returns the number of records read."""
    cdef _Consumer consumer = _Consumer(config, topic, partitions)
    cdef rd_kafka_message_t **batch = <rd_kafka_message_t **> malloc(batch_size * sizeof(rd_kafka_message_t *))
    cdef ssize_t count, i
    cdef int64_t read = 0
    cdef int64_t idle_polls = 0, idle_limit = <int64_t> (timeout_s * 1000 / max(poll_ms, 1))
    cdef bint started = False
    cdef str failure = None
    if batch == NULL:
        raise MemoryError()
    try:
        while read < records and failure is None:
            count = consumer.batch(batch, batch_size, poll_ms)
            if count <= 0:
                idle_polls += 1
                if idle_polls > idle_limit:
                    raise RuntimeError(f"{topic}: no record for {timeout_s:.0f} s after {read:,} of {records:,}")
                continue
            idle_polls = 0
            if not started:
                mark("start")
                started = True
            for i in range(count):
                if batch[i].err == 0:
                    read += 1
                elif batch[i].err != RD_KAFKA_RESP_ERR__PARTITION_EOF and failure is None:
                    failure = _message_error(batch[i])
                rd_kafka_message_destroy(batch[i])
        mark("end")
        if failure is not None:
            raise RuntimeError(f"reading {topic}: {failure}")
        return read
    finally:
        free(batch)
        consumer.close()


cdef class _Producer:
    """The engine's producer: batched delivery events on the main queue, logs on their own."""
    cdef rd_kafka_t *rk
    cdef rd_kafka_queue_t *events
    cdef rd_kafka_queue_t *logs
    cdef rd_kafka_topic_t *topic
    cdef int64_t acked
    cdef str failure

    def __cinit__(self, dict config, str topic):
        cdef const rd_kafka_metadata_t *metadata = NULL
        cdef rd_kafka_resp_err_t err
        self.rk = _new_client(RD_KAFKA_PRODUCER, config, "target")
        self.events = rd_kafka_queue_get_main(self.rk)
        self.logs = rd_kafka_queue_new(self.rk)
        rd_kafka_set_log_queue(self.rk, self.logs)
        self.topic = rd_kafka_topic_new(self.rk, topic.encode(), rd_kafka_default_topic_conf_dup(self.rk))
        self.acked = 0
        self.failure = None
        # the connection and the topic's leaders are known before the measured part starts
        with nogil:
            err = rd_kafka_metadata(self.rk, 0, self.topic, &metadata, 30000)
        if err:
            raise RuntimeError(f"no metadata for {topic}: {rd_kafka_err2str(err).decode()}")
        rd_kafka_metadata_destroy(metadata)

    cdef int serve(self, int timeout_ms) except -1:
        """NativeRelay._serve: delivery reports in arrays of up to 512, each frees its consumed record."""
        cdef rd_kafka_event_t *event
        cdef const rd_kafka_message_t *acks[ACKS_PER_CALL]
        cdef size_t count, i
        with nogil:
            event = rd_kafka_queue_poll(self.events, timeout_ms)
        while event != NULL:
            if rd_kafka_event_type(event) == RD_KAFKA_EVENT_DR:
                while True:
                    count = rd_kafka_event_message_array(event, acks, ACKS_PER_CALL)
                    if count == 0:
                        break
                    for i in range(count):
                        if acks[i].err and self.failure is None:
                            self.failure = rd_kafka_err2str(acks[i].err).decode()
                        if acks[i]._private != NULL:  # a consumed record (produce_pass), not load_pass's
                            rd_kafka_message_destroy(<rd_kafka_message_t *> acks[i]._private)
                    self.acked += count
            elif rd_kafka_event_type(event) == RD_KAFKA_EVENT_ERROR and rd_kafka_event_error_is_fatal(event):
                if self.failure is None:
                    self.failure = rd_kafka_event_error_string(event).decode("utf-8", "replace")
            rd_kafka_event_destroy(event)
            event = rd_kafka_queue_poll(self.events, 0)
        _drain(self.logs)
        return 0

    cdef int send(self, rd_kafka_message_t *m) except -1:
        """NativeRelay._send_one without the engine's bookkeeping: the same produceva call."""
        cdef rd_kafka_headers_t *headers = NULL
        cdef rd_kafka_timestamp_type_t timestamp_type
        cdef rd_kafka_vu_t values[7]
        cdef rd_kafka_error_t *error
        cdef size_t value_count = 6
        cdef int64_t timestamp = rd_kafka_message_timestamp(m, &timestamp_type)
        if rd_kafka_message_detach_headers(m, &headers) != RD_KAFKA_RESP_ERR_NO_ERROR:
            headers = NULL
        values[0].vtype = RD_KAFKA_VTYPE_RKT
        values[0].u.rkt = self.topic
        values[1].vtype = RD_KAFKA_VTYPE_PARTITION
        values[1].u.i32 = m.partition
        values[2].vtype = RD_KAFKA_VTYPE_VALUE
        values[2].u.mem.ptr = m.payload
        values[2].u.mem.size = m.len
        values[3].vtype = RD_KAFKA_VTYPE_KEY
        values[3].u.mem.ptr = m.key
        values[3].u.mem.size = m.key_len
        values[4].vtype = RD_KAFKA_VTYPE_OPAQUE
        values[4].u.ptr = <void *> m
        values[5].vtype = RD_KAFKA_VTYPE_TIMESTAMP
        values[5].u.i64 = timestamp if timestamp >= 0 else 0
        if headers != NULL:
            values[6].vtype = RD_KAFKA_VTYPE_HEADERS
            values[6].u.headers = headers
            value_count = 7
        while True:
            error = rd_kafka_produceva(self.rk, values, value_count)
            if error == NULL:
                return 0
            code = rd_kafka_error_code(error)
            reason = rd_kafka_error_string(error).decode()
            rd_kafka_error_destroy(error)
            if code != RD_KAFKA_RESP_ERR__QUEUE_FULL:
                if headers != NULL:
                    rd_kafka_headers_destroy(headers)
                rd_kafka_message_destroy(m)
                raise RuntimeError(f"produce failed: {reason}")
            self.serve(50)  # the local queue is full: serve reports, then retry, as the engine

    def close(self):
        if self.rk != NULL:
            rd_kafka_topic_destroy(self.topic)
            with nogil:
                rd_kafka_queue_destroy(self.events)
                rd_kafka_queue_destroy(self.logs)
                rd_kafka_destroy(self.rk)
            self.rk = NULL


def produce_pass(dict consumer_config, dict producer_config, str source_topic, str target_topic, int partitions,
                 int64_t records, int64_t chunk_records, int batch_size, int poll_ms, mark, double timeout_s=600.0):
    """Produces `records` records of the source topic to target_topic, `chunk_records` at a time:
    each chunk is read into memory and the consumer unassigned (not measured), then produced
    between mark("start") and mark("end") until every record of it is acknowledged. A chunk is
    small enough to stay in the CPU's cache, as the records the C loop produces are, since it
    fetched them an instant before. Returns the number produced."""
    cdef _Consumer consumer = _Consumer(consumer_config, source_topic, partitions)
    cdef _Producer producer = None
    cdef int64_t chunk = max(1, min(chunk_records, records))
    cdef rd_kafka_message_t **held = <rd_kafka_message_t **> malloc(chunk * sizeof(rd_kafka_message_t *))
    cdef int64_t *next_offsets = <int64_t *> malloc(partitions * sizeof(int64_t))
    cdef int64_t count = 0, sent = 0, i, end, want, done = 0
    cdef ssize_t got, j
    cdef int64_t idle_polls = 0, idle_limit = <int64_t> (timeout_s * 1000 / max(poll_ms, 1))
    if held == NULL or next_offsets == NULL:
        free(held)
        free(next_offsets)
        raise MemoryError()
    for i in range(partitions):
        next_offsets[i] = RD_KAFKA_OFFSET_BEGINNING
    try:
        producer = _Producer(producer_config, target_topic)
        while done < records:
            want = min(chunk, records - done)
            count = sent = 0
            if done:
                consumer.assign_from(next_offsets)
            while count < want:
                got = consumer.batch(held + count, <int> min(batch_size, want - count), poll_ms)
                if got <= 0:
                    idle_polls += 1
                    if idle_polls > idle_limit:
                        raise RuntimeError(f"{source_topic}: no record for {timeout_s:.0f} s after "
                                           f"{done + count:,} of {records:,}")
                    continue
                idle_polls = 0
                for j in range(got):
                    if held[count + j].err:
                        failure = _message_error(held[count + j])
                        count += got
                        raise RuntimeError(f"reading {source_topic}: {failure}")
                    if 0 <= held[count + j].partition < partitions:
                        next_offsets[held[count + j].partition] = held[count + j].offset + 1
                count += got
            consumer.assign_from(NULL)  # nothing is fetched while the chunk is produced
            mark("start")
            while sent < count:
                end = min(sent + batch_size, count)
                while sent < end:
                    sent += 1  # handed over (or freed) by send(), also when it raises
                    producer.send(held[sent - 1])
                producer.serve(0)
                if producer.failure is not None:
                    raise RuntimeError(f"producing to {target_topic}: {producer.failure}")
            idle_polls = 0
            while producer.acked < done + sent and producer.failure is None:
                before = producer.acked
                producer.serve(100)
                idle_polls = idle_polls + 1 if producer.acked == before else 0
                if idle_polls * 100 > timeout_s * 1000:
                    raise RuntimeError(f"{target_topic}: {done + sent - producer.acked:,} records unacknowledged "
                                       f"after {timeout_s:.0f} s")
            mark("end")
            if producer.failure is not None:
                raise RuntimeError(f"producing to {target_topic}: {producer.failure}")
            done += sent
            count = sent = 0
        return producer.acked
    finally:
        for i in range(sent, count):  # never handed to the producer
            rd_kafka_message_destroy(held[i])
        if producer is not None:
            if producer.acked < done + sent:  # leave nothing in flight that would free a record twice
                rd_kafka_purge(producer.rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT)
                producer.serve(100)
            producer.close()
        free(held)
        free(next_offsets)
        consumer.close()


def load_pass(dict producer_config, str topic, int partitions, int64_t records, int64_t first_index,
              list values, int batch_size, mark):
    """The ceiling's librdkafka load: produces `records` records of the benchmark's shape (key
    b"k%07d", a value from `values`, one 8-byte "seq" header) round-robin over the partitions, as
    fast as the target takes them; mark("start") before the first, mark("end") after every report.
    Keys and values are copied by librdkafka (RD_KAFKA_MSG_F_COPY), as a client's produce() does."""
    cdef _Producer producer = _Producer(producer_config, topic)
    cdef rd_kafka_vu_t vu[7]
    cdef rd_kafka_error_t *error
    cdef rd_kafka_headers_t *headers
    cdef char key[24]
    cdef unsigned char seq[8]
    cdef int64_t index, sent = 0
    cdef int b, key_len
    cdef Py_ssize_t pool = len(values)
    cdef bytes value
    cdef bytes name = b"seq"
    if pool == 0:
        raise ValueError("no values to produce")
    try:
        mark("start")
        while sent < records:
            for _ in range(min(batch_size, records - sent)):
                index = first_index + sent
                key_len = snprintf(key, sizeof(key), b"k%07lld", <long long> index)
                for b in range(8):
                    seq[7 - b] = <unsigned char> ((index >> (8 * b)) & 0xff)
                value = <bytes> values[index % pool]
                headers = rd_kafka_headers_new(1)
                rd_kafka_header_add(headers, name, 3, seq, 8)
                vu[0].vtype = RD_KAFKA_VTYPE_RKT
                vu[0].u.rkt = producer.topic
                vu[1].vtype = RD_KAFKA_VTYPE_PARTITION
                vu[1].u.i32 = <int32_t> (index % partitions)
                vu[2].vtype = RD_KAFKA_VTYPE_VALUE
                vu[2].u.mem.ptr = <void *> PyBytes_AS_STRING(value)
                vu[2].u.mem.size = PyBytes_GET_SIZE(value)
                vu[3].vtype = RD_KAFKA_VTYPE_KEY
                vu[3].u.mem.ptr = <void *> key
                vu[3].u.mem.size = key_len
                vu[4].vtype = RD_KAFKA_VTYPE_MSGFLAGS
                vu[4].u.i = RD_KAFKA_MSG_F_COPY
                vu[5].vtype = RD_KAFKA_VTYPE_OPAQUE
                vu[5].u.ptr = NULL
                vu[6].vtype = RD_KAFKA_VTYPE_HEADERS
                vu[6].u.headers = headers
                while True:
                    error = rd_kafka_produceva(producer.rk, vu, 7)
                    if error == NULL:
                        break
                    code = rd_kafka_error_code(error)
                    reason = rd_kafka_error_string(error).decode()
                    rd_kafka_error_destroy(error)
                    if code != RD_KAFKA_RESP_ERR__QUEUE_FULL:
                        rd_kafka_headers_destroy(headers)
                        raise RuntimeError(f"produce failed: {reason}")
                    producer.serve(50)
                sent += 1
            producer.serve(0)
            if producer.failure is not None:
                raise RuntimeError(f"producing to {topic}: {producer.failure}")
        while producer.acked < sent and producer.failure is None:
            producer.serve(100)
        mark("end")
        if producer.failure is not None:
            raise RuntimeError(f"producing to {topic}: {producer.failure}")
        return producer.acked
    finally:
        producer.close()
