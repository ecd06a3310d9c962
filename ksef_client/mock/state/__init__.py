"""The emulator's state, one component per group of the API, in plain Python (no HTTP).

``KSeFBackend`` (``mock/models.py``) composes them: ``auth``, ``sessions``, ``invoices``,
``permissions``, ``certificates``, ``collective``, ``testdata`` and ``storage``. Each component owns
one typed state object (``component.state``), which ``reset()`` replaces and persistence saves
whole; components depend on each other only through the references they are given.
"""
