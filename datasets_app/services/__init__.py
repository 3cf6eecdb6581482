"""Writes of the error notebook. Import from the submodules: cases, imports, dedup, export."""
