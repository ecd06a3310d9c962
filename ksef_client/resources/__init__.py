"""Resource groups of the high-level client (``ksef.sessions``, ``ksef.upo``), sync and async."""
