# The fast path's cdef classes, one concern a file (see engine/_fastpath.pyx).
from libc.stdint cimport int64_t

from engine._librdkafka cimport *

include "fastpath/ledger.pxd"
include "fastpath/record_filter.pxd"
include "fastpath/bookkeeper.pxd"
include "fastpath/native_relay.pxd"
