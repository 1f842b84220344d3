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
            if value != NULL and <Py_ssize_t> size == len(wanted) \
                    and memcmp(value, PyBytes_AS_STRING(wanted), size) == 0:
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
