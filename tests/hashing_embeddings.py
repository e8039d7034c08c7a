"""A deterministic, model-free ``Embeddings`` for tests that need vectors but not meaning.

Each text becomes a bag of its character unigrams and bigrams, hashed (blake2b)
into ``dim`` signed buckets and L2-normalised. The same text always gives the
same vector, in every process; texts sharing many characters get a high cosine,
so small retrieval checks still behave sensibly. Nothing is downloaded and
nothing is random.
"""

from __future__ import annotations

import hashlib
import math

from langchain_core.embeddings import Embeddings


class HashingEmbeddings(Embeddings):
    """Feature hashing of character 1- and 2-grams into ``dim`` dimensions."""

    def __init__(self, dim: int = 64) -> None:
        if dim < 2:
            raise ValueError("dim must be at least 2")
        self.dim = dim
        self.model_name = f"hashing-char12@{dim}"

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * self.dim
        grams = list(text) + [text[i : i + 2] for i in range(len(text) - 1)]
        for gram in grams:
            digest = hashlib.blake2b(gram.encode("utf-8", "surrogatepass"), digest_size=8).digest()
            value = int.from_bytes(digest, "little")
            vector[value % self.dim] += 1.0 if (value >> 63) & 1 else -1.0
        norm = math.sqrt(sum(v * v for v in vector))
        if norm == 0.0:  # empty text (or perfectly cancelling grams): a fixed unit vector
            vector[0], norm = 1.0, 1.0
        return [v / norm for v in vector]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._vector(text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)
