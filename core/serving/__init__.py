"""Model serving: the HTTP server, dynamic batching, traffic policies and batch inference."""
