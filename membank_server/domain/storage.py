"""The storage choices, typed: which kind of store, and how a hybrid store uses two.

Settings, bootstrap, the CLI and the tests all take these types; the strings of a
config file become them once, when the settings are loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from membank_server.domain.errors import ConfigError

__all__ = ["Consistency", "HybridPolicy", "ReadMode", "StoreKind", "WriteMode"]


class StoreKind(StrEnum):
    """``storage.backend``: one store, or ``hybrid`` (two of the others)."""

    EDGE = "edge"
    QDRANT = "qdrant"
    PGVECTOR = "pgvector"
    HYBRID = "hybrid"

    @property
    def embedded(self) -> bool:
        """Lives in a local data folder that one process owns."""
        return self is StoreKind.EDGE


class WriteMode(StrEnum):
    """How a hybrid store writes (see ``storage/hybrid.py``)."""

    PRIMARY_ONLY = "primary_only"
    BOTH = "both"
    ASYNC_BOTH = "async_both"


class ReadMode(StrEnum):
    """How a hybrid store reads; ``routed`` sends searches by collection size."""

    PRIMARY_FIRST = "primary_first"
    FASTEST = "fastest"
    BOTH = "both"
    ROUTED = "routed"


class Consistency(StrEnum):
    EVENTUAL = "eventual"
    STRONG = "strong"


@dataclass(frozen=True)
class HybridPolicy:
    """What a hybrid store does with its two stores: the rules between these fields
    are checked here, once, and name the setting that breaks them.

    Args:
        write: Where a write goes before it is acknowledged.
        read: Where reads go.
        consistency: ``strong`` acknowledges only writes both stores have.
        route_threshold: With ``read=routed``: live memories from which vector
            searches go to the secondary (below it, to the primary).

    Raises:
        ConfigError: a combination that cannot work.
    """

    write: WriteMode = WriteMode.BOTH
    read: ReadMode = ReadMode.PRIMARY_FIRST
    consistency: Consistency = Consistency.EVENTUAL
    route_threshold: int = 1_000_000

    def __post_init__(self) -> None:
        for name, value, kind in (
            ("write", self.write, WriteMode),
            ("read", self.read, ReadMode),
            ("consistency", self.consistency, Consistency),
        ):
            if not isinstance(value, kind):
                allowed = ", ".join(k.value for k in kind)
                raise ConfigError(
                    f"setting storage.hybrid.{name} must be one of {allowed}, not {value!r}"
                )
        if self.consistency is Consistency.STRONG and self.write is not WriteMode.BOTH:
            raise ConfigError(
                "setting storage.hybrid.consistency=strong needs storage.hybrid.write=both "
                "(a 2xx only once both stores have the write)"
            )
        if self.write is WriteMode.PRIMARY_ONLY and self.read in (ReadMode.FASTEST, ReadMode.BOTH):
            raise ConfigError(
                f"setting storage.hybrid.read={self.read} needs writes to reach the secondary: "
                "storage.hybrid.write=primary_only never writes it"
            )
        if self.route_threshold < 0:
            raise ConfigError(
                "setting storage.hybrid.route_threshold must be at least 0, "
                f"got {self.route_threshold}"
            )

    @property
    def store_read(self) -> ReadMode:
        """The read mode of the two-store layer under a routed store."""
        return ReadMode.PRIMARY_FIRST if self.read is ReadMode.ROUTED else self.read
