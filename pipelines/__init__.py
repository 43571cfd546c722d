"""pipelines: CSV/IDX reading, dataset fetching and generator stages over ``Chunk(x, y)`` arrays."""
