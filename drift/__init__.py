"""drift: upgrade embedding models in vector search without re-indexing."""
