"""Retrieval indexes (bm25, embeddings) over JSONL corpora, built once per corpus content."""
