"""State that outlives a request: the key-value store and rate limits (memory or Redis)."""
