"""What `mirror-engine --version` prints, one line each: the engine, the librdkafka its fast path
calls, and the compiled fast path itself (the Cython release that generated it, the file it was
loaded from). The third line tells an installed engine from a checkout's: its path is the one the
coordinator and its workers import.

    mirror-engine 0.1.0
    librdkafka 2.16.0 (confluent-kafka 2.16.1)
    engine._fastpath compiled by Cython 3.3.1, loaded from /opt/mirror-engine/lib/.../engine/_fastpath....so
"""

from __future__ import annotations

import argparse

# the letters of a pre-release in a hex version laid out as Python's sys.hexversion (Cython's too)
_RELEASE_LEVELS = {0xA: "a", 0xB: "b", 0xC: "rc"}


def cython_release(hex_version: int) -> str:
    """0x030301F0 -> '3.3.1', 0x030100B2 -> '3.1.0b2' (CYTHON_HEX_VERSION, laid out as sys.hexversion)."""
    major, minor, micro = hex_version >> 24 & 0xFF, hex_version >> 16 & 0xFF, hex_version >> 8 & 0xFF
    level, serial = hex_version >> 4 & 0xF, hex_version & 0xF
    suffix = "" if level == 0xF else f"{_RELEASE_LEVELS.get(level, '.dev')}{serial}"
    return f"{major}.{minor}.{micro}{suffix}"


def librdkafka_release(hex_version: int) -> str:
    """0x021000FF -> '2.16.0' (rd_kafka_version(): 0xMMmmrrxx, xx the pre-release id, 0xff final)."""
    major, minor, revision, pre = hex_version >> 24 & 0xFF, hex_version >> 16 & 0xFF, hex_version >> 8 & 0xFF, \
        hex_version & 0xFF
    return f"{major}.{minor}.{revision}" + ("" if pre == 0xFF else f"-pre{pre}")


def version_lines() -> list[str]:
    """The three lines; ImportError when the compiled fast path does not load."""
    import confluent_kafka

    from engine import __version__, _fastpath

    cython_hex, librdkafka_hex = _fastpath.build_identity()
    return [
        f"mirror-engine {__version__}",
        f"librdkafka {librdkafka_release(librdkafka_hex)} (confluent-kafka {confluent_kafka.__version__})",
        f"engine._fastpath compiled by Cython {cython_release(cython_hex)}, loaded from {_fastpath.__file__}",
    ]


class VersionAction(argparse.Action):
    """`--version`: the three lines and exit 0, or one line naming the missing fast path and exit 2."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        try:
            lines = version_lines()
        except ImportError as error:
            parser.exit(2, f"mirror-engine: error: the compiled fast path does not load ({error}); build it "
                           "(setup.py build_ext --inplace) or install the wheel (make wheel)\n")
        print("\n".join(lines))
        parser.exit(0)
