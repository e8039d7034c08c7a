"""Ingestion: load library files, split them into chunks, index them in Chroma."""
