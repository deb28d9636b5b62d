"""microexp.training."""
