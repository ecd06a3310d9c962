"""The pipeline that turns the KSeF OpenAPI spec into ``ksef_client/_generated``.

spec file -> overlay (English names, generator fixes) -> openapi-python-client with our
config and templates -> ruff -> checks that every operation of the spec was generated.
Run it with ``python -m generator SPEC_FILE OUTPUT_DIR``.
"""
