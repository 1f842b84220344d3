# PartitionLedger: see ledger.pxd for its parts.

cdef class PartitionLedger:
    """Per target partition: source offsets in flight, and what the target acknowledged."""

    def __cinit__(self):
        self.capacity = 1024  # a power of two, kept one by doubling: slots are index & (capacity - 1)
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
                slot = (self.head + i) & (self.capacity - 1)
                grown[i] = self.ring[slot]
                grown_stamps[i] = self.stamps[slot]
            free(self.ring)
            free(self.stamps)
            self.ring = grown
            self.stamps = grown_stamps
            self.head = 0
            self.capacity = new_capacity
        slot = (self.head + self.count) & (self.capacity - 1)
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
        self.head = (self.head + 1) & (self.capacity - 1)
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

    @property
    def ring_capacity(self):
        """Slots of the in-flight FIFO (a power of two)."""
        return self.capacity

    def uncommitted(self):
        """True when the target acknowledged records not yet stored as progress."""
        return self.last_acked_source > self.last_committed_source
