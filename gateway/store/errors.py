"""What a store call raises when the store cannot be reached (Redis down, a timeout):
redis-py wraps socket errors and timeouts in its own RedisError; a cluster without a node
for a slot raises RedisClusterException (not a RedisError)."""

from __future__ import annotations

from redis.exceptions import RedisClusterException, RedisError

__all__ = ["STORE_ERRORS"]

STORE_ERRORS: tuple[type[Exception], ...] = (RedisError, RedisClusterException)
"""Catch these around a store call to answer 503 instead of failing the request."""
