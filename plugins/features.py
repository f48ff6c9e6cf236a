"""Feature storage on the embedded engines: DuckDB+Parquet offline, SQLite online, LanceDB vectors."""
