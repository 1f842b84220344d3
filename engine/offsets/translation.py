"""Exact offset translation from the offset map (runs of copies, see engine.offsets.wire.OffsetRun).

A group committed at source offset g reads next the first record at or after g. Its translation
is the target offset of that record's copy — the newest copy when a restarted worker copied it
twice — so a consumer that fails over reads exactly the records that follow, none missed, none
read again. MM2 instead resumes at its last offset sync + 1 and re-reads up to offset.lag.max
records, or cannot translate a group that lags far behind.

A position in a gap between runs resumes at the next run only when the engine saw that gap (no
target record lies between the copies around it: filtered, compacted, markers). After a switch
from another replicator (Java MM2 copied part of the partition, then the engine continued from
its stored progress) the gap holds that replicator's copies, which the map does not know: a
position there translates to the first target offset after the engine's copies before the gap
(those copies are read again, none skipped), or, before the engine's first copy, not at all.
"""

from __future__ import annotations

# the first-upstream key of a partition's read-through entry in the offset map
READ_THROUGH = -1


class PartitionMap:
    """The runs of one source partition, from oldest to newest as they were written."""

    def __init__(self) -> None:
        # first upstream -> (first downstream, last upstream, last downstream)
        self.runs: dict[int, tuple[int, int, int]] = {}
        # (source offset read through, next target offset): everything copyable up to the first
        # was copied, and the offsets after the last run hold no records (markers, aborted records)
        self.read_through: tuple[int, int] | None = None
        # the source log start seen at the last prune (records below it are gone from the source),
        # and (last upstream, last downstream) of the newest run dropped below it
        self.source_log_start = 0
        self.dropped: tuple[int, int] | None = None

    def add(self, first_up: int, first_down: int, last_up: int, last_down: int) -> None:
        if first_up == READ_THROUGH:
            self.read_through = (last_up, first_down)
            return
        self.runs[first_up] = (first_down, last_up, last_down)

    def drop_below(self, log_start: int) -> list[int]:
        """Forgets runs that end before the source log start; returns their keys (to tombstone)."""
        self.source_log_start = max(self.source_log_start, log_start)
        gone = [first for first, (_, last_up, _) in self.runs.items() if last_up < log_start]
        for first in gone:
            _, last_up, last_down = self.runs.pop(first)
            if self.dropped is None or last_up > self.dropped[0]:
                self.dropped = (last_up, last_down)
        return gone

    @property
    def last_upstream(self) -> int:
        return max((last_up for _, last_up, _ in self.runs.values()), default=-1)

    @property
    def last_downstream(self) -> int:
        return max((last_down for _, _, last_down in self.runs.values()), default=-1)

    def translate(self, position: int) -> int | None:
        """Target offset at which a consumer at source `position` resumes, or None when not known yet.

        None means the copy has not reached `position` (records before it are not all copied), so
        no exact answer exists yet; a position right after the last copied record maps to the
        next target offset, which is never past the end of the target partition.
        """
        if not self.runs and self.read_through is None:
            return None
        best_up, best_down = None, -1
        for first_up, (first_down, last_up, _last_down) in self.runs.items():
            if last_up < position:
                continue
            up = max(position, first_up)
            down = first_down + (up - first_up)
            # the earliest record at or after the position; of its copies, the newest
            if best_up is None or up < best_up or (up == best_up and down > best_down):
                best_up, best_down = up, down
        if best_up is not None and best_up > position:
            # the position is in a gap of the map: trust it only where no target record lies between
            # the copies before it and best_down (module docstring); below the source log start
            # the consumer finds no record either
            gap_start = max(position, self.source_log_start)
            runs_before = [*self.runs.values(), *([(0, *self.dropped)] if self.dropped else [])]
            before = [last_down for _, last_up, last_down in runs_before if last_up < gap_start]
            if before:
                return min(best_down, max(before) + 1)
            if min(first_down for first_down, _, _ in self.runs.values()) != 0:
                return None  # the target held records before the engine's first copy: not ours to place
        if best_up is not None:
            return best_down
        if self.read_through is not None and position <= self.read_through[0] + 1:
            return max(self.read_through[1], self.last_downstream + 1)
        if position == self.last_upstream + 1:
            return self.last_downstream + 1
        return None


    def target_after(self, last: int) -> int | None:
        """The target offset that follows the copies of every source offset up to `last` (stored
        progress): where the copy of the next copied record goes. None when the map places no copy at
        or before `last`. Of a record copied twice, the newest copy counts."""
        candidates = [first_down + (min(last, last_up) - first_up) + 1
                      for first_up, (first_down, last_up, _) in self.runs.items() if first_up <= last]
        if self.read_through is not None and self.read_through[0] <= last:
            candidates.append(self.read_through[1])
        if self.dropped is not None and self.dropped[0] <= last:
            candidates.append(self.dropped[1] + 1)
        return max(candidates, default=None)

    def translate_back(self, target_position: int) -> int | None:
        """Source offset at which a consumer at `target_position` on the target resumes on the source:
        the source offset of the record copied to that position (failback)."""
        for first_up, (first_down, _last_up, last_down) in self.runs.items():
            if first_down <= target_position <= last_down:
                return first_up + (target_position - first_down)
        if not self.runs and self.read_through is None:
            return None
        if target_position > max(self.last_downstream, (self.read_through or (0, -1))[1] - 1):
            # past every copy: resume after everything the flow has read
            return max(self.last_upstream, self.read_through[0] if self.read_through else -1) + 1
        return None


class OffsetMap:
    """All partitions of one flow, fed from the offset-map topic."""

    def __init__(self) -> None:
        self.partitions: dict[tuple[str, int], PartitionMap] = {}

    def add(self, run) -> None:
        self.partitions.setdefault((run.topic, run.partition), PartitionMap()).add(
            run.first_upstream, run.first_downstream, run.last_upstream, run.last_downstream)

    def translate(self, topic: str, partition: int, position: int) -> int | None:
        partition_map = self.partitions.get((topic, partition))
        return partition_map.translate(position) if partition_map else None

    def translate_back(self, topic: str, partition: int, target_position: int) -> int | None:
        partition_map = self.partitions.get((topic, partition))
        return partition_map.translate_back(target_position) if partition_map else None


__all__ = ["READ_THROUGH", "OffsetMap", "PartitionMap"]
