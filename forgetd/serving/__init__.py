"""Serving: the embedded engine (transformers + peft) behind an OpenAI-compatible HTTP API.

``app`` (the process), ``routes`` and ``schemas`` (HTTP), ``engine`` and ``generation`` (torch),
``notify`` (Redis announcements of new adapter versions), ``domain`` (torch-free shared types).
Import from the submodules: this package's import pulls in nothing heavy.
"""
