"""microexp.export."""
