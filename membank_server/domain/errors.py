"""The errors membank raises, one tree under :class:`MembankError`.

    MembankError
    ├── InvalidInput            a request is well-formed but its values are wrong (422)
    │   ├── DimensionMismatch   a client vector has the wrong number of components
    │   └── TooLarge            a job holds more items than one job may (413)
    ├── NotConfigured           a request needs a setting this server lacks (the LLM) (400)
    ├── NotFound                no such memory for this user (404)
    │   ├── NotEnabled          a feature this server was not configured with
    │   └── BackupNotFound      no such backup, or no such file on a backup target
    ├── Conflict                the id or idempotency key is taken by something else (409)
    ├── PreconditionFailed      If-Match named a version that is not the current one (412)
    ├── Forbidden               the key may not do this (403)
    │   └── QuotaExceeded       the user would hold more than a quota allows
    ├── TooBusy                 too many requests of this key at once (429)
    │   └── QueueFull           the job queue, or a user's share of it, is full (429)
    ├── ModelOutputInvalid      the language model answered something unusable (502)
    ├── IntegrityError          stored data failed its integrity check: a ciphertext that
    │                           does not belong to its row, or an unknown data key (500)
    ├── ConfigError             a setting is missing or wrong (fails at start)
    ├── BackupError             a backup cannot be written, read or restored as asked, or
    │                           its target refused (access denied, no such bucket) (500)
    │   ├── BackupCorrupt       a part or manifest fails its size, hash, authentication or
    │   │                       parse check, or is missing; ``details["part"]`` names it
    │   └── BackupKeyError      no backup key, a malformed one, or not the key the backup
    │                           was made with (checked before anything is read or written)
    └── Unavailable             a dependency cannot answer now (503)
        ├── StorageUnavailable  the memory store
        │   └── InsufficientStorage  its disk is nearly full: writes refused (507)
        ├── EmbedderUnavailable the embedding model or provider
        ├── ModelUnavailable    the language model (fact extraction) cannot answer now
        ├── CacheUnavailable    a cache level (callers fall back, never answer 503 for it)
        └── BackupTargetUnavailable  a backup target (folder, S3) cannot answer now

Adapters translate their driver's exceptions into these at the boundary
(``raise StorageUnavailable(...) from exc``); the HTTP layer maps them to a
status code in one table and the CLI to one line and an exit code.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BackupCorrupt",
    "BackupError",
    "BackupKeyError",
    "BackupNotFound",
    "BackupTargetUnavailable",
    "CacheUnavailable",
    "ConfigError",
    "Conflict",
    "DimensionMismatch",
    "EmbedderUnavailable",
    "Forbidden",
    "InsufficientStorage",
    "IntegrityError",
    "InvalidInput",
    "MembankError",
    "ModelOutputInvalid",
    "ModelUnavailable",
    "NotConfigured",
    "NotEnabled",
    "NotFound",
    "PreconditionFailed",
    "QueueFull",
    "QuotaExceeded",
    "StorageUnavailable",
    "TooBusy",
    "TooLarge",
    "Unavailable",
]


class MembankError(Exception):
    """Root of every error membank raises on purpose.

    Args:
        message: One line a human can act on.
        details: Machine-readable context (field names, indexes, limits).
    """

    code = "error"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}


class InvalidInput(MembankError):
    code = "invalid_input"


class DimensionMismatch(InvalidInput):
    code = "dimension_mismatch"


class TooLarge(InvalidInput):
    code = "too_large"


class NotConfigured(MembankError):
    code = "not_configured"


class NotFound(MembankError):
    code = "not_found"


class NotEnabled(NotFound):
    code = "not_enabled"


class BackupNotFound(NotFound):
    code = "backup_not_found"


class Conflict(MembankError):
    code = "conflict"


class PreconditionFailed(MembankError):
    code = "precondition_failed"


class Forbidden(MembankError):
    code = "forbidden"


class QuotaExceeded(Forbidden):
    code = "quota_exceeded"


class TooBusy(MembankError):
    code = "too_many_concurrent"


class QueueFull(TooBusy):
    """``details["retry_after"]``: seconds worth waiting before trying again."""

    code = "queue_full"


class ModelOutputInvalid(MembankError):
    code = "model_output_invalid"


class IntegrityError(MembankError):
    code = "integrity_error"


class ConfigError(MembankError):
    code = "config_error"


class BackupError(MembankError):
    code = "backup_error"


class BackupCorrupt(BackupError):
    code = "backup_corrupt"


class BackupKeyError(BackupError):
    code = "backup_key_error"


class Unavailable(MembankError):
    code = "unavailable"


class StorageUnavailable(Unavailable):
    code = "storage_unavailable"


class InsufficientStorage(StorageUnavailable):
    code = "insufficient_storage"


class EmbedderUnavailable(Unavailable):
    code = "embedder_unavailable"


class ModelUnavailable(Unavailable):
    code = "model_unavailable"


class CacheUnavailable(Unavailable):
    code = "cache_unavailable"


class BackupTargetUnavailable(Unavailable):
    code = "backup_target_unavailable"
