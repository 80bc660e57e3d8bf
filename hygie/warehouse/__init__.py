"""The warehouse: pseudonymised tables in Parquet with modular encryption, queried through DuckDB."""
