# The C side of the provenance header (its layout: engine/wire.py, the codec's Python side):
# the per-record value (the partition's prefix + the offset) and the record-level cycle rule.

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
        if ((value[2] << 8) | value[3]) == cluster_len and size >= 4 + cluster_len \
                and memcmp(value + 4, PyBytes_AS_STRING(cluster), cluster_len) == 0:
            return True
    return False



cdef inline void _put_int64(char *out, int64_t value) noexcept:
    cdef int i
    for i in range(8):
        out[7 - i] = <char> ((value >> (8 * i)) & 0xff)

