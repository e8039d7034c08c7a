"""Web front end: FastAPI app, HTTP API, Gradio chat and the embed widget."""
