"""Operators: the records that flow and every step that turns media into meaning (no Ray here)."""
