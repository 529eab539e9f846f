"""Backup archives: where they are stored, how they are laid out, sealed and pruned.

- :mod:`~membank_server.archive.local` and :mod:`~membank_server.archive.s3`: the
  ``BackupTarget`` port over a folder and over an S3 bucket (boto3);
  :func:`~membank_server.archive.targets.target_from_url` picks one by URL.
- :mod:`~membank_server.archive.crypto` and :mod:`~membank_server.archive.age`: the backup
  key, chunked AES-256-GCM, and age.
- :mod:`~membank_server.archive.writer` / :mod:`~membank_server.archive.reader`: the
  format (sections of JSON Lines in zstd parts of bounded size, ``manifest.json`` last,
  described in :mod:`~membank_server.archive.manifest` and ``docs/backup-format.md``).
- :mod:`~membank_server.archive.catalog`: list, load, delete backups, resolve chains.
- which backups a prune keeps is :mod:`membank_server.domain.retention` (pure policy).

Nothing is imported here, so a local backup never loads boto3.
"""

from __future__ import annotations

__all__: list[str] = []
