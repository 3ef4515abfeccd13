"""Admission filters: validation, duplicate detection (memorisation and retain conflicts: issue 4)."""
