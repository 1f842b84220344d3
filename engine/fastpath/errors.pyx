# The fast path's exceptions and the consumer and producer errors they map: which error belongs to one
# record or partition (the coordinator stops that partition alone) and which to the link.

class PartitionFailed(RuntimeError):
    """An error; with `topic` and `partition` set, one that only that source partition has (a
    record the target refuses, records lost to retention): the coordinator stops that partition
    alone and retries it at the next topic refresh."""

    def __init__(self, message: str, topic: str | None = None, partition: int | None = None):
        super().__init__(message)
        self.topic = topic
        self.partition = partition


class DeliveryFailed(PartitionFailed):
    """The target refused or lost a record; nothing after the last acked offset is committed."""


class RecordFilterFailed(PartitionFailed):
    """The flow's Python record filter raised; the message names the record."""


class TransactionFailed(RuntimeError):
    """A transaction of the exactly-once mode failed; `fatal` when the producer cannot go on
    (fenced by a newer instance with the same transactional.id, or a fatal idempotence error)."""

    def __init__(self, message: str, fatal: bool):
        super().__init__(message)
        self.fatal = fatal


class SourceReadFailed(PartitionFailed):
    """The source consumer reported an error for a partition."""


# errors that belong to one record or one partition, not to the link or the cluster
_MSG_SIZE_TOO_LARGE = KafkaError.MSG_SIZE_TOO_LARGE
_RECORD_ERRORS = frozenset((KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_RECORD, KafkaError.INVALID_MSG,
                            KafkaError.RECORD_LIST_TOO_LARGE, KafkaError.INVALID_TIMESTAMP,
                            KafkaError.TOPIC_AUTHORIZATION_FAILED))
_AUTO_OFFSET_RESET = KafkaError._AUTO_OFFSET_RESET


def source_error(str flow, str cluster, str topic, int partition, int code, str reason, int64_t offset, watermarks):
    """The exception for a consumer error on one partition. `watermarks()` -> (log start, end) is
    asked only when the position fell out of the log: retention outran the copy (MM2 would jump
    to the earliest offset without a word) or the topic was recreated."""
    if code == _AUTO_OFFSET_RESET:
        low, high = watermarks()
        if 0 <= offset < low:
            return SourceReadFailed(
                f"source {topic}[{partition}] on cluster {cluster}: records {offset}..{low - 1} were deleted "
                f"(retention) before they were copied; nothing past them is copied. To accept the loss and go on "
                f"from the log start: mirror-engine skip <config> --flow {flow} --topic {topic} "
                f"--partition {partition} --past {low - 1}", topic, partition)
        return SourceReadFailed(
            f"source {topic}[{partition}] on cluster {cluster}: position {offset} is outside the log "
            f"({low}..{high}); was the topic deleted and created again? {reason}", topic, partition)
    return SourceReadFailed(f"source {topic}[{partition}] on cluster {cluster}: {reason}",
                            topic if code in _RECORD_ERRORS else None, partition if code in _RECORD_ERRORS else None)


def produce_failed(str flow, str topic, int partition, int64_t offset, str remote, str target, int code, str reason):
    """The exception for a record the producer refused at once: one partition's own when the error
    is the record's (too large, not allowed), else the link's. `target`: " on cluster B" or ""."""
    record_error = code in _RECORD_ERRORS
    return DeliveryFailed(
        f"cannot produce {topic}[{partition}]@{offset} to {remote}{target}: {reason}"
        f"{_skip_hint(flow, code, topic, partition, offset)}",
        topic if record_error else None, partition if record_error else None)


def _skip_hint(str flow, int code, str topic, int partition, int64_t offset):
    if code not in _RECORD_ERRORS:
        return ""
    if code == KafkaError.TOPIC_AUTHORIZATION_FAILED:
        # every record of the partition would be refused alike: skipping one would only lose it
        return (". The partition stops here and is retried at a later topic refresh; the engine's principal needs "
                "an ALLOW WRITE ACL on the remote topic (see `mirror-engine acls`)")
    return (f". The partition stops here and is retried at a later topic refresh; to leave this record out: "
            f"mirror-engine skip <config> --flow {flow} --topic {topic} --partition {partition} --past {offset}")
