"""Language model adapters (fact extraction)."""
