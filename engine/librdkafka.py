"""Makes the librdkafka that confluent-kafka uses visible to the fast path's C code.

engine/_fastpath is compiled against our declarations of librdkafka's C API (engine/_librdkafka.h)
and leaves its symbols unresolved: the library it runs on is the one inside the confluent-kafka
wheel (confluent_kafka.libs/librdkafka-<hash>.so.1), pinned in pyproject.toml. Why that one rather
than a librdkafka fetched at build time: one librdkafka in the process (the Python-API baseline loop,
the admin plane and the fast path behave alike), nothing to download or compile beyond our own
module, and pip's isolated build needs no wheel paths. Python imports extensions with RTLD_LOCAL,
so the wheel's library is opened again here with RTLD_GLOBAL before the fast path is imported.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

MINIMUM_VERSION = 0x02000000  # produceva, detach_headers, event message arrays: all in 2.0


class LibrdkafkaMissing(ImportError):
    """No usable librdkafka next to confluent-kafka."""


def library_path() -> str:
    import confluent_kafka  # noqa: F401  (its import loads the wheel's library first)

    package_dir = Path(confluent_kafka.__file__).resolve().parent
    bundled = sorted((package_dir.parent / "confluent_kafka.libs").glob("librdkafka*.so*"))
    if bundled:
        return str(bundled[0])
    # confluent-kafka built from source links a system librdkafka
    system = ctypes.util.find_library("rdkafka")
    if system:
        return system
    raise LibrdkafkaMissing(
        "mirror-engine: librdkafka not found: neither confluent_kafka.libs/librdkafka*.so* beside the "
        "confluent-kafka package nor a system librdkafka; reinstall confluent-kafka from its wheel")


def load() -> ctypes.CDLL:
    library = ctypes.CDLL(library_path(), mode=os.RTLD_NOW | os.RTLD_GLOBAL)
    version = library.rd_kafka_version()
    if version < MINIMUM_VERSION:
        raise LibrdkafkaMissing(
            f"mirror-engine: librdkafka {version:#x} is too old for the fast path; 2.0 or newer is needed")
    return library


_library = load()
