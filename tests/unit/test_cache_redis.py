"""RedisCache settings that fail at construction, before any connection is made."""

from __future__ import annotations

import pytest

from membank_server.cache.redis import RedisCache
from membank_server.domain.errors import ConfigError

__all__: list[str] = []


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379/0", "redis://127.0.0.1:port/0", ""])
def test_a_bad_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="invalid Redis URL"):
        RedisCache(url)


@pytest.mark.parametrize("ttl", [0, -5.0, float("nan")])
def test_a_nonpositive_default_ttl_is_refused(ttl: float) -> None:
    with pytest.raises(ValueError, match="ttl"):
        RedisCache("redis://127.0.0.1:6379/0", default_ttl=ttl)


async def test_names_and_prefixes_default_per_level() -> None:
    l2 = RedisCache("redis://127.0.0.1:6379/0")
    l3 = RedisCache("redis://127.0.0.1:6379/1", name="l3")
    try:
        assert (l2.name, l2.prefix) == ("l2", "membank:l2:")
        assert (l3.name, l3.prefix) == ("l3", "membank:l3:")
        assert l2.breaker.state == "closed"
    finally:
        await l2.aclose()
        await l3.aclose()
        await l3.aclose()  # closing twice is harmless (the tiered cache and bootstrap may both)
