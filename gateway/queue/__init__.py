"""The durable webhook queue, its workers and the schedules (memory or Redis Streams)."""
