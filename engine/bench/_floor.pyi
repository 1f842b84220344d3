from collections.abc import Callable
from typing import Any

# mark("start") / mark("end"): the window's edges, called by the pass itself
Mark = Callable[[str], Any]

def consume_pass(config: dict[str, Any], topic: str, partitions: int, records: int, batch_size: int, poll_ms: int,
                 mark: Mark, timeout_s: float = ...) -> int: ...
def produce_pass(consumer_config: dict[str, Any], producer_config: dict[str, Any], source_topic: str,
                 target_topic: str, partitions: int, records: int, chunk_records: int, batch_size: int, poll_ms: int,
                 mark: Mark, timeout_s: float = ...) -> int: ...
def load_pass(producer_config: dict[str, Any], topic: str, partitions: int, records: int, first_index: int,
              values: list[bytes], batch_size: int, mark: Mark) -> int: ...
