"""The back-pressure check every queue makes before it takes a job."""

from __future__ import annotations

from collections import Counter

from membank_server.domain.errors import QueueFull
from membank_server.domain.jobs import QueueLimits

__all__ = ["check_limits"]


def check_limits(have: dict[str, int], n: int, per_user: Counter[str], limits: QueueLimits) -> None:
    """Raise ``QueueFull`` when ``n`` more items (``per_user`` of them by user) pass a
    limit; ``have``: items waiting now, in all (``*``) and by user (``user:<id>``)."""
    waiting = have.get("*", 0)
    if waiting + n > limits.max_items:
        raise QueueFull(
            f"the job queue holds {waiting} items; {n} more would pass its limit of "
            f"{limits.max_items}",
            {"waiting": waiting, "limit": limits.max_items},
        )
    for user_id, count in sorted(per_user.items()):
        mine = have.get(f"user:{user_id}", 0)
        if mine + count > limits.max_items_per_user:
            raise QueueFull(
                f"user {user_id} has {mine} items waiting; {count} more would pass the limit "
                f"of {limits.max_items_per_user} per user",
                {"waiting": mine, "limit": limits.max_items_per_user, "user_id": user_id},
            )
