"""PgDump: ``pg_dump -Fc`` of membank's schemas, streamed out of the tool's stdout.

The password never reaches the command line (where ``ps`` shows it): the DSN is
given without it and the password through ``PGPASSWORD``. The dump is uncompressed
(``-Z0``): the backup compresses it with zstd. With ``snapshot`` it reads a snapshot
another transaction exported (``pg_export_snapshot``), so it sees the database as
the backup's scan of the memories does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from membank_server.domain.errors import BackupError, ConfigError
from membank_server.pg._dsn import redact, where

__all__ = ["PgDump", "find_tool"]

_CHUNK = 1024 * 1024
_STDERR_MAX = 8192


def find_tool(name: str, bin_dir: str | None) -> str:
    """The path of a PostgreSQL client tool, from ``bin_dir`` or the PATH.

    Raises:
        ConfigError: not found (naming the setting that points at it).
    """
    found = shutil.which(name, path=bin_dir) if bin_dir else shutil.which(name)
    if found is None:
        where_ = f"in {bin_dir}" if bin_dir else "on the PATH"
        raise ConfigError(
            f"{name} not found {where_}: set backup.pg_bin to the folder holding PostgreSQL's "
            "client tools (of the server's major version or newer), or backup.pg_dump=false"
        )
    return found


def _split(dsn: str) -> tuple[str, str | None]:
    """The DSN without its password, and the password."""
    parts = urlsplit(dsn)
    query = parse_qsl(parts.query, keep_blank_values=True)
    password = parts.password or next((v for k, v in query if k == "password"), None)
    netloc = parts.netloc.rpartition("@")
    if netloc[1]:
        user = netloc[0].partition(":")[0]
        host = f"{user}@{netloc[2]}"
    else:
        host = parts.netloc
    kept = urlencode([(k, v) for k, v in query if k != "password"])
    clean = urlunsplit((parts.scheme, host, parts.path, kept, ""))
    return clean, unquote(password) if password else None


class PgDump:
    """The :class:`~membank_server.domain.ports.DatabaseDump` port with ``pg_dump``.

    Args:
        dsn: The database (``storage.postgres.dsn``).
        schemas: The schemas to dump (membank's tables, the audit log's).
        bin_dir: Where ``pg_dump`` is; None: the PATH.
    """

    def __init__(self, dsn: str, schemas: Sequence[str], *, bin_dir: str | None = None) -> None:
        self._dsn, self.schemas, self.bin_dir = dsn, tuple(dict.fromkeys(schemas)), bin_dir
        self.where = where(dsn)

    def _args(self, snapshot: str | None) -> tuple[list[str], dict[str, str]]:
        exe = find_tool("pg_dump", self.bin_dir)
        clean, password = _split(self._dsn)
        args = [exe, "--format=custom", "-Z0", "--no-password", f"--dbname={clean}"]
        args += [f"--schema={s}" for s in self.schemas]
        if snapshot:
            args.append(f"--snapshot={snapshot}")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PGAPPNAME"] = "membank-backup"
        if password is not None:
            env["PGPASSWORD"] = password
        return args, env

    async def dump(self, snapshot: str | None = None) -> AsyncIterator[bytes]:
        args, env = self._args(snapshot)
        try:
            proc = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
        except OSError as exc:
            raise BackupError(f"cannot run {Path(args[0]).name}: {exc.strerror}") from None
        assert proc.stdout is not None and proc.stderr is not None
        errors = asyncio.ensure_future(proc.stderr.read())
        try:
            while chunk := await proc.stdout.read(_CHUNK):
                yield chunk
            status = await proc.wait()
            err = await errors
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            if not errors.done():
                errors.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await errors
        if status != 0:
            text = redact(err[-_STDERR_MAX:].decode(errors="replace"), self._dsn)
            last = " ".join(text.split())[-500:]
            raise BackupError(f"pg_dump of {self.where} failed (exit {status}): {last}")
