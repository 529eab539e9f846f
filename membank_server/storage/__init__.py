"""MemoryStore adapters: EdgeStore (embedded Qdrant Edge) and QdrantStore (qdrant-client)."""
