cdef class RecordFilter:
    cdef tuple header_present, header_absent, header_equals, key_prefixes
    cdef object python
    cdef bint needs_headers

    cdef bint _passes(self, const char *key, Py_ssize_t key_len, object py_headers,
                      const rd_kafka_headers_t *c_headers) except -1
    cdef bint keep(self, object message) except -1
    cdef bint keep_native(self, rd_kafka_message_t *m, str topic) except -1
    cdef bint _ask_python(self, str topic, int partition, int64_t offset, key, value, headers) except -1
