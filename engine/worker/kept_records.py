"""Which source records a flow copies: its record filter, and with provenance headers on, not a
record whose provenance names the target (a record-level cycle). The worker, its resume after the
target's tail and the audit all decide by this one rule."""

from __future__ import annotations

from engine._fastpath import RecordFilter
from engine.filters import RecordFilterConfig, load_python_filter
from engine.offsets import wire


def build_record_filter(config: RecordFilterConfig | None) -> RecordFilter | None:
    if config is None or not config.per_record():
        return None
    return RecordFilter(
        header_present=config.header_present, header_absent=config.header_absent,
        header_equals=config.header_equals, key_prefixes=config.key_prefixes,
        python=load_python_filter(config.python) if config.python else None,
    )


def record_keeper(record_filter, cycle_target: str | None):
    """Whether the flow copies a source record: its record filter (None: every record), and with
    provenance headers on, not a record whose provenance names the target (a record-level cycle)."""
    keep = (lambda message: True) if record_filter is None else record_filter.keeps
    if cycle_target is None:
        return keep
    cycle = cycle_target.encode()
    return lambda message: not wire.came_from(message.headers(), cycle) and keep(message)
