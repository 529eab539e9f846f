"""``membank bench backup``: backup and restore throughput of the embedded store.

Fills a new embedded store in a temporary folder with N memories (random unit
vectors, one history event each), backs it up to the target (a temporary folder by
default, or ``s3://bucket/prefix`` on the configured ``backup.s3`` endpoint), then
restores it into a second new embedded store. Prints memories/s, MB/s of stored
bytes and the compression ratio; figures, not assertions.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import typer

from membank_cli.application import Application
from membank_server.domain.model import (
    Event,
    HistoryEvent,
    Memory,
    MemoryRecord,
    content_hash,
)
from membank_server.domain.ports import MemoryStore

__all__ = ["BackupFigures", "backup"]

_BATCH = 2000
#: The dimension of the embedded store of the default embedder.
_DIM = 384


@dataclass(frozen=True)
class BackupFigures:
    memories: int
    dimension: int
    fill_seconds: float
    backup_seconds: float
    restore_seconds: float
    raw_bytes: int
    stored_bytes: int

    @property
    def backup_rate(self) -> float:
        return self.memories / self.backup_seconds

    @property
    def restore_rate(self) -> float:
        return self.memories / self.restore_seconds


async def _fill(store: MemoryStore, memories: int, dim: int, users: int) -> None:
    rng = np.random.default_rng(7)
    at = datetime(2025, 1, 1, tzinfo=UTC)
    for start in range(0, memories, _BATCH):
        n = min(_BATCH, memories - start)
        vectors = rng.standard_normal((n, dim), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        batch = []
        for i, vector in enumerate(vectors.tolist()):
            k = start + i
            text = f"bench memory {k}: the user said something worth keeping, number {k * 7}"
            meta = {"n": k, "topic": ("a", "b", "c")[k % 3]}
            memory_id = uuid.UUID(int=int(rng.integers(1 << 62)) << 64 | k, version=4)
            user = f"user-{k % users:05d}"
            memory = Memory(memory_id, user, text, meta, at, at, 1, content_hash(text))
            batch.append(
                MemoryRecord(memory, vector, (HistoryEvent(Event.ADD, 1, text, meta, at),))
            )
        await store.upsert(batch)


def backup(
    ctx: typer.Context,
    memories: int = typer.Option(100_000, min=1, help="Memories to back up and restore."),
    users: int = typer.Option(1_000, min=1, help="Distinct users the memories spread over."),
    target: str | None = typer.Option(
        None, "--target", help="s3://bucket/prefix (backup.s3 settings) [default: a temp folder]."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print figures as JSON."),
) -> None:
    """Backup and restore throughput of an embedded store of N 384-d memories."""
    src_app = Application.of(ctx)
    dim = _DIM
    with tempfile.TemporaryDirectory(prefix="membank-bench-backup-") as folder:
        root = Path(folder)
        where = target or str(root / "backups")
        common = {"MEMBANK_STORAGE__BACKEND": "edge"}
        src_app.override({**common, "MEMBANK_STORAGE__EDGE__PATH": str(root / "source")})
        dst_app = Application()
        dst_app.override({**common, "MEMBANK_STORAGE__EDGE__PATH": str(root / "restored")})

        async def make() -> tuple[float, float, str, int, int]:
            store = await src_app.store()
            began = time.perf_counter()
            with src_app.console.status(f"writing {memories:,} memories"):
                await _fill(store, memories, dim, users)
            filled = time.perf_counter() - began
            with src_app.console.status("backing up"):
                report = await (await src_app.backups(store)).run(target=where)
            m = report.manifest
            return filled, report.seconds, m.id, m.raw_bytes, m.stored_bytes

        fill_s, backup_s, backup_id, raw, stored = src_app.run(make)

        async def restore() -> float:
            store = await dst_app.store()
            service = await dst_app.backups(store)
            with dst_app.console.status("restoring"):
                done = await service.restore(backup_id, target=where)
            async with service.archive(where) as archive:
                await archive.delete(backup_id)  # the bench leaves nothing behind
            return done.seconds

        restore_s = dst_app.run(restore)
    figures = BackupFigures(memories, dim, fill_s, backup_s, restore_s, raw, stored)
    if as_json:
        src_app.json({**asdict(figures), "target": "s3" if target else "folder"})
        return
    mb = stored / 1e6
    src_app.table(
        f"membank bench backup: {memories:,} memories of {dim}-d to "
        + ("S3" if target else "a local folder"),
        ["", "seconds", "memories/s", "MB/s (stored)"],
        [
            ("backup", f"{backup_s:.1f}", f"{figures.backup_rate:,.0f}", f"{mb / backup_s:.1f}"),
            (
                "restore",
                f"{restore_s:.1f}",
                f"{figures.restore_rate:,.0f}",
                f"{mb / restore_s:.1f}",
            ),
        ],
    )
    src_app.success(
        f"{raw / 1e6:,.1f} MB raw, {mb:,.1f} MB stored ({raw / stored:.2f}x compressed); "
        f"filling the store took {fill_s:.1f} s"
    )
