"""The portal: the HTTP API (FastAPI) and, later, the pages, over one hub."""
