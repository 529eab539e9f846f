"""Adapters of the MemoryStore port: EdgeStore (embedded Qdrant Edge), QdrantStore (qdrant-client)."""
