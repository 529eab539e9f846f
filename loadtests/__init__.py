"""Black-box load tests for a membank server: Locust users, shapes, seeding, texts.

Everything here talks HTTP to a server and nothing else: it imports neither
``membank_server`` nor ``membank_cli`` (an import-linter contract checks it), so
it runs unchanged against any deployment with only Locust installed. The
scenarios live in ``scenarios.toml``: copy it, edit it, pass the copy.
"""
