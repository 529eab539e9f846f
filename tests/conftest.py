"""Fixtures for the real services that scripts/services starts (see scripts/test)."""

from __future__ import annotations

import os

import pytest

from tests.support.seaweedfs import S3Service


def _required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        # Never skip: a real-service test that silently skips proves nothing.
        pytest.fail(
            f"{name} is not set: run the suite through scripts/test, which starts the services"
        )
    return value


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the real Redis (valkey-server) that scripts/services started."""
    return _required("MBTEST_REDIS_URL")


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """DSN of the real PostgreSQL 18 + pgvector that scripts/services started."""
    return _required("MBTEST_PG_DSN")


@pytest.fixture(scope="session")
def s3() -> S3Service:
    """The real S3 (SeaweedFS ``weed mini``) that scripts/services started, and its bucket."""
    return S3Service(
        endpoint=_required("MBTEST_S3_ENDPOINT"),
        access_key=_required("MBTEST_S3_ACCESS_KEY"),
        secret_key=_required("MBTEST_S3_SECRET_KEY"),
        bucket=_required("MBTEST_S3_BUCKET"),
    )
