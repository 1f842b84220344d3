# The wall clock of record timestamps, read once per batch of records or of reports.

cdef inline int64_t _now_ms() noexcept nogil:
    """The wall clock in ms, as record timestamps and MM2's System.currentTimeMillis() count."""
    cdef timespec now
    clock_gettime(CLOCK_REALTIME, &now)
    return <int64_t> now.tv_sec * 1000 + now.tv_nsec // 1000000


def wall_clock_ms():
    """The clock the record-age and latency aggregates use, for tests."""
    return _now_ms()
