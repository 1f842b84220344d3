"""One worker process: batched consume from the source, relay through the fast path, store progress.

Progress is stored only for records the target acknowledged, every `offset.flush.interval.ms`,
on a reassignment and at shutdown. After a crash the worker resumes at the stored offset + 1, so
records acked after the last store are copied again (at-least-once), never skipped.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING

from engine import ipc
from engine._fastpath import DeliveryFailed
from engine.clients import client_config
from engine.offsets.translation import READ_THROUGH
from engine.worker.batch_loop import effective_loop
from engine.worker.kept_records import build_record_filter
from engine.worker.offset_syncs import OffsetSyncWriter
from engine.worker.progress import ProgressError, ProgressStore
from engine.worker.relays import RelayLoop, make_relay
from engine.worker.resume import TargetTailResume

log = logging.getLogger(__name__)

SHUTDOWN_FLUSH_S = 60.0


class LeaseExpired(RuntimeError):
    """Exactly-once mode under scale-out: the lease ran out with records in the open transaction.
    It is aborted rather than committed, since another instance may copy these partitions now."""
# exactly-once mode: records and their progress are committed together this often
TRANSACTION_INTERVAL_S = 0.1
TRANSACTION_TIMEOUT_S = 60.0


class Worker:
    """Runs one Assign until Stop, a closed inbox, or a fatal error."""

    def __init__(self, assignment: ipc.Assign, inbox: queue.Queue[ipc.ToWorker | None],
                 report: Callable[[ipc.Report | ipc.Failed], None], relay: RelayLoop, progress: ProgressStore,
                 offset_syncs: OffsetSyncWriter | None = None, target_tail: TargetTailResume | None = None,
                 clock: Callable[[], float] = time.monotonic):
        """`relay` copies the records, `progress` stores how far they were acknowledged, `offset_syncs`
        (None: emit.offset-syncs.enabled = false) writes MM2's offset syncs; open_worker() builds them."""
        self.assignment = assignment
        self.inbox = inbox
        self.report = report
        self.relay = relay
        self.progress = progress
        self.offset_syncs = offset_syncs
        self.target_tail = target_tail if target_tail is not None else TargetTailResume(progress)
        self.clock = clock
        self.exactly_once = assignment.transactional_id is not None
        self.relay.bookkeeper.flow_name = assignment.flow
        if assignment.provenance:
            self.relay.bookkeeper.enable_provenance(assignment.source_alias, assignment.target_alias)
        self._last_report_at = clock()
        self.lease = Lease(assignment.lease_s, clock, assignment.leased)
        self.budget = ByteBudget(assignment.bandwidth_limit_bytes_per_s, clock)
        self._read_through_written: dict[tuple[str, int], tuple] = {}

    # -- lifecycle -------------------------------------------------------------------------------

    def run(self) -> int:
        """Returns the process exit code: 0 after a clean stop, 1 after a fatal error."""
        try:
            if self.exactly_once:
                # fences every older process with this worker's transactional id, and aborts what
                # it left open (a killed or hung predecessor)
                self.relay.init_transactions(TRANSACTION_TIMEOUT_S)
                self.relay.begin_transaction()
            self._assign(self.assignment)
            self._loop()
            return 0 if self._shutdown() else 1
        except (DeliveryFailed, RuntimeError) as error:
            log.error("worker %s of %s stopped: %s", self.assignment.worker_index, self.assignment.flow, error)
            if self.exactly_once:
                self._abort_quietly()
            else:
                self._store_acked_quietly()
            self.report(ipc.Failed(self.assignment.worker_index, str(error),
                                   getattr(error, "topic", None), getattr(error, "partition", None)))
            return 1
        finally:
            self.relay.close()

    def _loop(self) -> None:
        poll_ms = min(self.assignment.poll_timeout_ms, 200)
        store_interval_s = (TRANSACTION_INTERVAL_S if self.exactly_once
                            else self.assignment.offset_flush_interval_ms / 1000)
        next_store = self.clock() + store_interval_s
        next_report = self.clock() + self.assignment.report_interval_ms / 1000
        while True:
            try:
                command: ipc.ToWorker | None | bool = self.inbox.get_nowait()
            except queue.Empty:
                command = False  # nothing asked
            if command is None:
                log.warning("the coordinator is gone (stdin closed); storing progress and stopping")
                return
            if isinstance(command, ipc.Stop):
                return
            if isinstance(command, ipc.Lease):
                self.lease.renew()
            if isinstance(command, ipc.Assign):
                self._drain()
                self._assign(command)
                self.lease = Lease(command.lease_s, self.clock, command.leased)
                self.report(self._snapshot())  # tells the coordinator the old partitions are drained
            if self.lease.expired():
                if self.exactly_once and self._transaction_has_records():
                    raise LeaseExpired(f"worker {self.assignment.worker_index} of {self.assignment.flow}: the lease "
                                       "ran out with records in the open transaction; it is aborted")
                self.relay.serve(0)  # acks of what is in flight still count
                time.sleep(poll_ms / 1000)
            elif self.relay.bookkeeper.ledgers:
                ahead_s = self.budget.ahead_s(self.relay.bookkeeper.bytes_sent)
                if ahead_s > 0:
                    time.sleep(min(ahead_s, 0.2))  # short: the inbox and acks stay served
                    self.relay.serve(0)
                else:
                    self.relay.pump(poll_ms)
            else:
                time.sleep(poll_ms / 1000)  # nothing assigned: only the inbox matters
            if self.relay.bookkeeper.failure is not None:
                raise self.relay.bookkeeper.failure
            if self.offset_syncs is not None and not self.exactly_once:
                self.offset_syncs.send(self.relay.bookkeeper.take_offset_syncs())
            now = self.clock()
            if now >= next_store:
                self._store_acked()
                next_store = now + store_interval_s
            if now >= next_report:
                self.report(self._snapshot())
                next_report = now + self.assignment.report_interval_ms / 1000

    def _assign(self, assignment: ipc.Assign) -> None:
        self.assignment = assignment
        self.relay.bookkeeper.record_filter = build_record_filter(assignment.record_filter)
        self.relay.bookkeeper.offset_lag_max = assignment.offset_lag_max if assignment.offset_syncs_topic else -1
        stored = self.progress.load() if assignment.partitions else {}
        if assignment.resume_from_target and not self.exactly_once and assignment.partitions:
            stored = self.target_tail.resume(assignment, stored)
        positions = []
        for task in assignment.partitions:
            last = stored.get((task.topic, task.partition), -1)
            self.relay.add_partition(task.topic, task.remote_topic, task.partition, last, task.apply_filter)
            # resume after the last replicated offset, as MM2 does (offset + 1)
            start = last + 1 if last >= 0 else OFFSET_BEGINNING
            positions.append((task.topic, task.partition, start))
        self.relay.assign(positions)
        log.info("worker %s of %s assigned %d partitions", assignment.worker_index, assignment.flow,
                 len(positions))
        log.debug("positions: %s", positions)

    def _drain(self) -> None:
        """Waits for every record in flight, stores progress, drops the current partitions."""
        self._flush_producer()
        self._store_acked()
        self.report(self._snapshot())  # before the ledgers go, or their last deltas are lost
        self.relay.assign([])
        for key in list(self.relay.bookkeeper.ledgers):
            self.relay.remove_partition(*key)

    def _shutdown(self) -> bool:
        if self.exactly_once:
            self._commit_transaction(begin_next=False)  # raises rather than store anything else
            flushed = True
        else:
            flushed = self._flush_producer(raise_on_failure=False)
            self._store_acked()
        if self.offset_syncs is not None:
            self.offset_syncs.flush()
        self.report(self._snapshot())
        return flushed

    def _flush_producer(self, raise_on_failure: bool = True) -> bool:
        remaining = self.relay.flush(SHUTDOWN_FLUSH_S)
        if self.relay.bookkeeper.failure is not None:
            if raise_on_failure:
                raise self.relay.bookkeeper.failure
            log.error("%s", self.relay.bookkeeper.failure)
            return False
        if remaining:
            log.error("%d records still unacknowledged by cluster %s after %.0fs; their progress is not stored",
                      remaining, self.assignment.target_alias, SHUTDOWN_FLUSH_S)
            return False
        return True

    # -- progress --------------------------------------------------------------------------------

    def _store_acked(self, batch_complete: bool = True) -> None:
        if self.exactly_once:
            self._commit_transaction()
            return
        if self.offset_syncs is not None:
            # as MM2 does on each offset commit: the newest undue sync per partition is sent too
            self.relay.bookkeeper.promote_delayed_syncs()
            self.offset_syncs.send(self.relay.bookkeeper.take_offset_syncs())
        if batch_complete:
            self._pass_invisible_offsets()
        runs = self.relay.bookkeeper.take_offset_runs() + self._read_through_entries()
        changed = [ledger for ledger in self.relay.bookkeeper.ledgers.values() if ledger.uncommitted()]
        try:
            if runs:
                self.progress.store_runs(runs)
            if changed:
                self.progress.store([(ledger.source_topic, ledger.partition, ledger.last_acked_source)
                                     for ledger in changed])
        except ProgressError as error:
            if not error.pending:
                raise
            # the target is away: the writes stay queued in order; progress is stored again next time
            log.warning("%s; progress is stored again at the next interval", error)
            return
        for ledger in changed:
            ledger.last_committed_source = ledger.last_acked_source

    def _transaction_has_records(self) -> bool:
        return any(ledger.in_flight or ledger.uncommitted() for ledger in self.relay.bookkeeper.ledgers.values())

    def _commit_transaction(self, begin_next: bool = True) -> None:
        """Exactly-once mode: the open transaction's records, their offset map and their progress
        are committed together; offset syncs (on the source, outside it) follow the commit.
        Under scale-out only while the lease holds: past it, the transaction is aborted instead."""
        if self.lease.expired():
            if self._transaction_has_records():
                raise LeaseExpired(f"worker {self.assignment.worker_index} of {self.assignment.flow}: the lease ran "
                                   "out before the commit; the open transaction is aborted")
            return  # nothing to commit; the transaction stays open and empty
        self._flush_producer()  # every record acked: the map and progress below are final
        if self.offset_syncs is not None:
            self.relay.bookkeeper.promote_delayed_syncs()
        syncs = self.relay.bookkeeper.take_offset_syncs()
        self._pass_invisible_offsets()
        records = self.progress.run_records(self.relay.bookkeeper.take_offset_runs() + self._read_through_entries())
        changed = [ledger for ledger in self.relay.bookkeeper.ledgers.values() if ledger.uncommitted()]
        records += self.progress.progress_records([(ledger.source_topic, ledger.partition, ledger.last_acked_source)
                                                   for ledger in changed])
        for topic, partition, key, value in records:
            self.relay.produce_record(topic, partition, key, value)
        self._flush_producer()
        self.relay.commit_transaction(TRANSACTION_TIMEOUT_S)
        for ledger in changed:
            ledger.last_committed_source = ledger.last_acked_source
        if self.offset_syncs is not None:
            self.offset_syncs.send(syncs)
        if begin_next:
            self.relay.begin_transaction()

    def _abort_quietly(self) -> None:
        """Exactly-once mode after a failure: nothing of the open transaction becomes visible.
        A fenced worker cannot abort either; the broker aborted it for the fencing instance."""
        try:
            self.relay.abort_transaction(10.0)
        except Exception as error:
            log.error("could not abort the open transaction: %s", error)

    def _pass_invisible_offsets(self) -> None:
        """Moves progress past offsets no consumer ever receives (transaction markers, aborted
        records): when nothing is in flight, everything before the consumer's position is done.

        Only valid between batches, when every record the consumer returned went through the relay.
        """
        idle = [ledger for ledger in self.relay.bookkeeper.ledgers.values() if ledger.in_flight == 0]
        if not idle:
            return
        positions = self.relay.positions([(ledger.source_topic, ledger.partition) for ledger in idle])
        for ledger, position in zip(idle, positions, strict=True):
            if position > ledger.last_acked_source + 1 and ledger.pending_filtered < position:
                ledger.last_acked_source = position - 1

    def _read_through_entries(self) -> list[tuple[str, int, int, int, int, int]]:
        """Offset-map entries saying how far each partition was read and where its next copy goes."""
        entries = []
        for ledger in self.relay.bookkeeper.ledgers.values():
            if ledger.last_acked_target < 0 or ledger.in_flight:
                continue
            entry = (ledger.source_topic, ledger.partition, READ_THROUGH, ledger.last_acked_target + 1,
                     ledger.last_acked_source, -1)
            if self._read_through_written.get((ledger.source_topic, ledger.partition)) != entry:
                entries.append(entry)
                self._read_through_written[(ledger.source_topic, ledger.partition)] = entry
        return entries

    def _store_acked_quietly(self) -> None:
        try:
            # records of the other partitions are still on their way: their acks count
            self.relay.flush(SHUTDOWN_FLUSH_S / 2)
            # a failure may leave a consumed batch half sent: the consumer's position is no
            # measure of what was copied then, so only acked records count
            self._store_acked(batch_complete=False)
        except Exception as error:  # already failing; the stored progress just stays older
            log.error("could not store progress while stopping: %s", error)

    def _snapshot(self) -> ipc.Report:
        now = self.clock()
        partitions = []
        for ledger in self.relay.bookkeeper.ledgers.values():
            end = self.relay.high_watermark(ledger.source_topic, ledger.partition)
            age, latency = ledger.take_timings()
            partitions.append(ipc.PartitionProgress(
                topic=ledger.source_topic, partition=ledger.partition,
                last_acked_offset=ledger.last_acked_source,
                last_committed_offset=ledger.last_committed_source,
                records_delta=ledger.acked_records - ledger.reported_records,
                value_bytes_delta=ledger.acked_value_bytes - ledger.reported_value_bytes,
                filtered_delta=ledger.filtered_records - ledger.reported_filtered,
                in_flight=ledger.in_flight,
                source_end_offset=end,
                polled_value_bytes_delta=ledger.polled_value_bytes - ledger.reported_polled_value_bytes,
                record_age=ipc.Timings(*age),
                replication_latency=ipc.Timings(*latency),
                newest_acked_timestamp_ms=ledger.newest_acked_timestamp,
                resume_found_delta=self.target_tail.found.pop((ledger.source_topic, ledger.partition), 0),
                resume_unmatched_delta=self.target_tail.unmatched.pop((ledger.source_topic, ledger.partition), 0),
            ))
            ledger.reported_polled_value_bytes = ledger.polled_value_bytes
            ledger.reported_records = ledger.acked_records
            ledger.reported_value_bytes = ledger.acked_value_bytes
            ledger.reported_filtered = ledger.filtered_records
        report = ipc.Report(self.assignment.worker_index, now - self._last_report_at, partitions,
                            self.assignment.generation)
        self._last_report_at = now
        return report


def open_worker(assignment: ipc.Assign, inbox: queue.Queue[ipc.ToWorker | None],
                report: Callable[[ipc.Report | ipc.Failed], None]) -> Worker:
    """A Worker with the clients its first Assign names: the relay's consumer and producer, the
    progress store's, and the offset-sync producer's."""
    role = f"{assignment.flow}|MirrorSourceConnector-{assignment.worker_index}"
    relay = make_relay(effective_loop(assignment), assignment.source_client, assignment.target_client,
                       assignment.flow, role, assignment.source_alias, assignment.target_alias,
                       compression=assignment.compression, transactional_id=assignment.transactional_id,
                       max_message_bytes=assignment.max_message_bytes,
                       consumer_overrides=assignment.consumer_overrides,
                       producer_overrides=assignment.producer_overrides)
    progress = ProgressStore(
        assignment.source_alias, assignment.target_alias, assignment.offsets_topic,
        consumer_config=client_config(assignment.target_client, f"{role}|progress-consumer"),
        producer_config=client_config(assignment.target_client, f"{role}|progress-producer"),
    )
    offset_syncs = (OffsetSyncWriter(assignment.offset_syncs_topic, assignment.offset_syncs_client,
                                     f"{role}|{assignment.offset_syncs_role}")
                    if assignment.offset_syncs_topic else None)
    return Worker(assignment, inbox, report, relay, progress, offset_syncs)


class Lease:
    """Scale-out: the worker copies only until `seconds` after the coordinator's last renewal (see
    ipc.Lease); past it another instance may own the partitions. Acknowledged progress is still
    stored meanwhile. Without a lease (seconds 0, one instance alone) it never expires."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic, granted: bool = True):
        self.seconds = seconds
        self.clock = clock
        self.until = clock() + seconds if granted else float("-inf")
        self._said_expired = not granted  # a worker that starts without one says nothing until renewed

    def renew(self) -> None:
        self.until = self.clock() + self.seconds

    def expired(self) -> bool:
        expired = self.seconds > 0 and self.clock() > self.until
        if expired != self._said_expired:
            self._said_expired = expired
            log.warning("%s", "the coordinator stopped renewing the lease (frozen, or out of its group); copying "
                              "paused" if expired else "lease renewed; copying")
        return expired


class ByteBudget:
    """A worker's share of its flow's bandwidth limit: how far ahead of it the worker is."""

    def __init__(self, bytes_per_s: int, clock: Callable[[], float] = time.monotonic):
        self.bytes_per_s = bytes_per_s
        self.clock = clock
        self.started_at = clock()

    def ahead_s(self, bytes_sent: int) -> float:
        """Seconds to wait before sending more; 0 without a limit."""
        if not self.bytes_per_s:
            return 0.0
        return max(0.0, bytes_sent / self.bytes_per_s - (self.clock() - self.started_at))
