"""The one place Redis clients for REDIS_URL are built: a plain client, or with
NOTIFY_REDIS_CLUSTER a cluster client that follows MOVED/ASK redirections to the node that
owns each key (CONTRACT section 10).

Every key the project keeps under REDIS_URL is used alone (a stream, a dead-letter stream,
the outcomes stream, a sender's schedule), so no command, pipeline or script needs two keys
in one slot, and any names work on a cluster.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import redis
import redis.asyncio as aioredis

from notify.settings import Settings

AsyncRedis: TypeAlias = aioredis.Redis | aioredis.RedisCluster
SyncRedis: TypeAlias = redis.Redis | redis.RedisCluster


def async_client(settings: Settings, **options: Any) -> AsyncRedis:
    """An asyncio client for REDIS_URL (`options`: connection keywords, both kinds take them)."""
    if settings.redis_cluster:
        return aioredis.RedisCluster.from_url(settings.redis_url, **options)
    return aioredis.Redis.from_url(settings.redis_url, **options)


def sync_client(settings: Settings, **options: Any) -> SyncRedis:
    """A blocking client for REDIS_URL: the CLI, the workers' send-rate limiter."""
    return sync_client_for(settings.redis_url, cluster=settings.redis_cluster, **options)


def sync_client_for(url: str, *, cluster: bool, **options: Any) -> SyncRedis:
    """`sync_client` for callers that carry the two settings without a Settings (rules tools)."""
    if cluster:
        return redis.RedisCluster.from_url(url, **options)
    return redis.Redis.from_url(url, **options)


async def drop_idle(client: AsyncRedis) -> None:
    """Close the pooled connections not in use (after a failure they are suspect). A cluster
    client renews its nodes' connections itself, after a failed command, so it has none to drop."""
    if isinstance(client, aioredis.Redis):
        await client.connection_pool.disconnect(inuse_connections=False)
