"""Run inside the baseline SDK's own virtualenv (``ksef-client==0.20.0``): parse the same pages.

Prints JSON with its per-item and per-page times. Standalone on purpose: it imports the other
SDK, whose import name is also ``ksef_client``.
"""

import json
import sys
import time


def fastest(run, repeat=25):
    """The best of ``repeat`` runs after a warm-up: the same estimator as ours (bench/measure.py)."""
    run()
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        timings.append(time.perf_counter() - start)
    return min(timings)


def main() -> None:
    # Imported here: this file is read by our tooling too, where ``ksef_client`` is our package.
    from ksef_client.openapi_models import QueryInvoicesMetadataResponse, SessionInvoicesResponse  # noqa: PLC0415

    with open(sys.argv[1], "rb") as first, open(sys.argv[2], "rb") as second:
        invoices_raw, metadata_raw = first.read(), second.read()
    invoices = fastest(lambda: SessionInvoicesResponse.from_dict(json.loads(invoices_raw)))
    metadata = fastest(lambda: QueryInvoicesMetadataResponse.from_dict(json.loads(metadata_raw)))
    print(json.dumps({"session_invoices_us_per_item": invoices / 1000 * 1e6, "metadata_ms_per_page": metadata * 1e3}))


if __name__ == "__main__":
    main()
