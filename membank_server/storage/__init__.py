"""MemoryStore adapters: EdgeStore (embedded Qdrant Edge), QdrantStore (qdrant-client),
PgVectorStore (asyncpg + pgvector), and the composites HybridStore and RoutedStore."""
