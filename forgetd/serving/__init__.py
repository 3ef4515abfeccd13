"""Serving: the embedded engine (transformers + peft) behind an OpenAI- and vLLM-compatible HTTP API.

``app`` (the process), ``routes``, ``lora_routes``, ``sse`` and ``schemas`` (HTTP), ``engine``,
``backends`` and ``generation`` (torch), ``streaming`` (streamed generation on a thread), ``named``
(what ``/v1/load_lora_adapter`` may load), ``notify`` (Redis announcements of new adapter versions),
``rollback`` (moving a lineage back), ``domain`` (torch-free shared types).
Import from the submodules: this package's import pulls in nothing heavy.
"""
