"""The web console for nurses and staff: server-rendered pages over the same services as the API."""
