"""Job queue adapters: a SQLite file in the data folder, a PostgreSQL table, Redis Streams."""
