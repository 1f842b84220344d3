"""The properties of a file as they are read: which keys the loader looked at, and its remarks on them."""

from __future__ import annotations


class ReadKeys(dict):
    """The properties, remembering which keys the engine looked at: the others are reported unused
    (a warning, never an error: real MM2 files carry Connect worker keys)."""

    def __init__(self, props: dict[str, str]):
        super().__init__(props)
        self.read: set[str] = set()
        self.remarks: list[tuple[int, str]] = []

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.read.add(key)  # type: ignore[arg-type]
        return super().__contains__(key)

    def get(self, key: str, default=None):
        self.read.add(key)
        return super().get(key, default)

    def unused(self) -> list[str]:
        return sorted(k for k in self if k not in self.read)


def remark(props: dict[str, str], level: int, message: str) -> None:
    """A remark on the file: logged when it is loaded (unless quietly, as a reload does) and kept in
    EngineConfig.remarks for check-config."""
    if isinstance(props, ReadKeys):
        props.remarks.append((level, message))


def remark_once(props: dict[str, str], level: int, message: str) -> None:
    """A remark that several flows would make alike (flows into one target) is made once."""
    if isinstance(props, ReadKeys) and (level, message) not in props.remarks:
        props.remarks.append((level, message))


def mark_read(props: dict[str, str], key: str) -> None:
    if isinstance(props, ReadKeys):
        props.read.add(key)
