"""The durable store of a logical host: SQLite in WAL mode, synchronous=FULL."""
