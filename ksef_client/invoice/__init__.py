"""FA(3) invoices as typed objects: read, build, total and write them.

::

    from ksef_client.invoice import Invoice, Line, Party, vat_invoice, correction, advance, settlement

    invoice = Invoice.from_xml(xml_bytes)      # checked against the XSD, bound to typed classes
    invoice.to_xml()                           # UTF-8, no BOM, checked against the XSD

Modules: ``model`` (``Invoice``), ``builders`` (``vat_invoice``, ``correction``,
``CorrectedInvoice``, ``CorrectionEffect``), ``parties`` (``Party``, ``Address``, ``Contact``,
``ThirdParty``, ``ThirdPartyRole``, ``TaxpayerStatus``), ``advances`` (``advance``,
``advance_correction``, ``settlement``, ``settlement_correction``, ``AdvanceInvoice``),
``corrections`` (``party_correction``, ``number_correction``, ``discount_correction``,
``DiscountedItem``; the parties', advances' and these names are also importable from
``builders``), ``totals`` (``Line`` and the rounding rules). The typed
classes themselves are generated from the official XSDs into ``ksef_client._invoice_models``
(FA(3), FA(2), FA_RR(1), UPO v4-3); this package is the hand-written layer on top. Importing it
loads the FA(3) classes (a few hundred milliseconds); ``import ksef_client`` does not.
"""

# From builders, which gathers the builders' public names (its own, the parties', advances').
from ksef_client.invoice.builders import (
    Address,
    AdvanceInvoice,
    Contact,
    CorrectedInvoice,
    CorrectionEffect,
    DiscountedItem,
    Party,
    TaxpayerStatus,
    ThirdParty,
    ThirdPartyRole,
    advance,
    advance_correction,
    correction,
    discount_correction,
    number_correction,
    party_correction,
    settlement,
    settlement_correction,
    vat_invoice,
)
from ksef_client.invoice.model import Invoice
from ksef_client.invoice.totals import RATES, Line, Totals, round_amount

__all__ = [
    "RATES",
    "Address",
    "AdvanceInvoice",
    "Contact",
    "CorrectedInvoice",
    "CorrectionEffect",
    "DiscountedItem",
    "Invoice",
    "Line",
    "Party",
    "TaxpayerStatus",
    "ThirdParty",
    "ThirdPartyRole",
    "Totals",
    "advance",
    "advance_correction",
    "correction",
    "discount_correction",
    "number_correction",
    "party_correction",
    "round_amount",
    "settlement",
    "settlement_correction",
    "vat_invoice",
]
