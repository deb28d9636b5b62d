"""microexp.edge."""
