"""Sorted rows of the in-memory blob index (C hot path of drvault.repository.rows); see
native/rows.c. Tables are 49-byte rows back to back, sorted by their first 32 bytes (the blob
ID). ValueError for a buffer that is not whole rows or an ID that is not 32 bytes.
"""

from typing_extensions import Buffer

def from_records(records: Buffer, start: int, count: int, pack: int, /) -> bytes:
    """Rows of ``count`` 48-byte pack-table records at ``start``, in pack number ``pack``."""

def sort(rows: Buffer, /) -> bytes:
    """The rows sorted by ID; equal IDs keep their order."""

def merge(a: Buffer, b: Buffer, /) -> bytes:
    """Two sorted tables as one; among equal IDs the rows of ``a`` come first."""

def duplicates(rows: Buffer, /) -> list[int]:
    """Positions of the rows whose ID equals the previous row's."""

def find(rows: Buffer, blob_id: Buffer, /) -> int:
    """Position of the first row with ``blob_id``, or -1."""
