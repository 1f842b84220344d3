# cython: language_level=3
"""The worker's per-record work: relay consumed records to the target and account for acks.

What a relayed record keeps (docs/design.md, 'What a copy keeps'):
    source record (topic T, partition P, offset O, timestamp TS, key K, value V, headers H1..Hn)
      -> target record (topic remote(T), partition P, timestamp TS or "now" when TS < 0,
                        key K, value V, headers H1..Hn in order, null values kept)
Offsets are not kept: the target assigns its own. To map a delivery report (which carries only
the target offset) back to its source offset, each target partition keeps a FIFO of the source
offsets in flight, in a C ring buffer: the producer is idempotent, so reports of one partition
arrive in the order the records were produced, and the head of the FIFO is the record acked.
Beside each source offset the FIFO keeps the record's timestamp: MM2's metrics (docs/metrics.md)
are aggregated in the ledger, per report interval, without a Python object per record — value
bytes and record age (now - timestamp) when a batch is polled, replication latency (now -
timestamp) when the target acknowledges; one clock reading per batch of records or of reports.

Two loops, each holding a Bookkeeper (the ledgers, the filter and the ack rule):
  NativeRelay  the worker's loop on librdkafka's C API: batches consumed from the consumer queue
               are produced without copying keys, values or headers (the consumed message stays
               alive until its delivery report, then both are freed); delivery reports arrive as
               batched events. No Python object per record unless a Python record filter asks.
  PythonRelay  the same over confluent-kafka's Python API, in plain Python (engine/worker/
               python_relay.py): `mirror.engine.loop = python`, the benchmarks' in-run baseline
               and the C loop's oracle. Both satisfy engine.worker.relays.RelayLoop.

One extension made of included files, one concern each (engine/fastpath/, declarations in the .pxd
of the same name, pulled in by engine/_fastpath.pxd):
  clock.pxi           the wall clock of record timestamps
  errors.pyx          the exceptions, and which consumer or producer error is one partition's own
  provenance.pyx      the C side of the provenance header (engine/offsets/wire.py holds its layout)
  ledger.pyx          PartitionLedger: in-flight FIFO, MM2 metrics, offset-sync rule, offset-map runs
  record_filter.pyx   RecordFilter, one rule for Python and C messages
  bookkeeper.pyx      Bookkeeper: the partitions' ledgers, the ack rule, the first failure
  native_relay.pyx    NativeRelay: the C-API loop
  clients.pxi         the librdkafka client factory (also engine/bench/_floor.pyx's)
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int64_t
from posix.time cimport CLOCK_REALTIME, clock_gettime, timespec
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcmp, memcpy, strcmp

from engine._librdkafka cimport *

import logging
from time import monotonic

from confluent_kafka import KafkaError

from engine.offsets.wire import PROVENANCE_HEADER
from engine.offsets.wire import came_from as _wire_came_from

_librdkafka_log = logging.getLogger("librdkafka")
DEF ACKS_PER_CALL = 512
DEF UNKNOWN_PARTITION_WAIT_S = 60.0

include "fastpath/clock.pxi"
include "fastpath/errors.pyx"
include "fastpath/provenance.pyx"
include "fastpath/ledger.pyx"
include "fastpath/record_filter.pyx"
include "fastpath/bookkeeper.pyx"
include "fastpath/native_relay.pyx"
include "fastpath/clients.pxi"


cdef extern from *:
    # a macro of the generated C file: the Cython release that wrote this module
    int CYTHON_HEX_VERSION


def build_identity():
    """(the hex version of the Cython that generated this module, the hex version of the librdkafka
    whose C API it calls): what `mirror-engine --version` prints of the fast path."""
    return CYTHON_HEX_VERSION, rd_kafka_version()
