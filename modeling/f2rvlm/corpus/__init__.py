"""Corpus search (FFRS): topic fragments, a fragment index, recall + F2RVLM rerank."""
