"""Readers for the micro-expression data sets' on-disk layouts and annotation sheets.

Each reader returns plain records; bad rows are reported with ``warnings.warn`` naming the
clip, never dropped silently and never fatal unless the file itself is unreadable."""
from .au_codes import ParsedAUs, parse_action_units
from .megc import MegcComposite
from .samm import SammAUMaps, read_samm_csv

__all__ = ["ParsedAUs", "parse_action_units", "MegcComposite", "SammAUMaps", "read_samm_csv"]
