"""``make peers``: other Python KSeF SDKs (ksef2, ksef-client) against the emulator; see ``run.py``."""
