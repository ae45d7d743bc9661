"""Test support: a local OpenAI-compatible server and local process helpers (dev only)."""
