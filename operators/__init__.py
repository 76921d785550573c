"""Operators: the records that flow (``records``), the operator contract (``base``), and every step
that turns media into meaning: ``media`` (decode, align, live reading), ``models`` (the encoders),
``analysis`` (fusion, shots, highlights, summaries). No Ray here."""
