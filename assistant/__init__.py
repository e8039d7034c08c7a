"""The assistant core: settings, model, embeddings, store, retrieval and answering (imports neither ingest nor ui)."""
