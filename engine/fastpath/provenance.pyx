# The C side of the provenance header codec; its layout and Python side are in engine/offsets/wire.py, and
# both sides answer to tests/data/provenance_vectors.json: the per-record value (the partition's
# prefix + the offset, _provenance_into) and the record-level cycle rule (_came_from, wire.came_from).

cdef bytes _PROVENANCE_NAME = PROVENANCE_HEADER.encode()
# a provenance value: INT16 version, STRING cluster, STRING topic (<= 249 B), INT32, INT64
DEF PROVENANCE_MAX = 2 + 2 + 32767 + 2 + 255 + 4 + 8


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
        if <size_t> ((value[2] << 8) | value[3]) == cluster_len and size >= 4 + cluster_len \
                and memcmp(value + 4, PyBytes_AS_STRING(cluster), cluster_len) == 0:
            return True
    return False


cdef inline void _put_int64(char *out, int64_t value) noexcept:
    cdef int i
    for i in range(8):
        out[7 - i] = <char> ((value >> (8 * i)) & 0xff)


cdef inline Py_ssize_t _provenance_into(char *out, bytes prefix, int64_t offset) noexcept:
    """Writes a record's provenance value (at most PROVENANCE_MAX bytes) to out; returns its size."""
    cdef Py_ssize_t prefix_len = PyBytes_GET_SIZE(prefix)
    memcpy(out, PyBytes_AS_STRING(prefix), prefix_len)
    _put_int64(out + prefix_len, offset)
    return prefix_len + 8


def native_provenance_value(bytes prefix, int64_t offset):
    """The C loop's provenance value of a record, for the shared test vectors."""
    cdef char value[PROVENANCE_MAX]
    if len(prefix) > PROVENANCE_MAX - 8:
        raise ValueError("provenance prefix too long")
    return PyBytes_FromStringAndSize(value, _provenance_into(value, prefix, offset))


def native_came_from(list headers, bytes cluster):
    """The C loop's cycle rule on [(name, value)] headers, for the shared test vectors."""
    cdef rd_kafka_headers_t *c_headers = rd_kafka_headers_new(len(headers) or 1)
    cdef bytes name_b, value_b
    try:
        for name, value in headers:
            name_b = name.encode()
            value_b = value
            rd_kafka_header_add(c_headers, PyBytes_AS_STRING(name_b), len(name_b),
                                NULL if value_b is None else PyBytes_AS_STRING(value_b),
                                0 if value_b is None else len(value_b))
        return _came_from(c_headers, cluster)
    finally:
        rd_kafka_headers_destroy(c_headers)
