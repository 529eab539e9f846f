"""Adapters for security: API keys, audit log, throttling and field encryption."""
