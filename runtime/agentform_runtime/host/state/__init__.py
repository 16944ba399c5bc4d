"""Durable state: the SQLite store, artifact files and the secret box."""
