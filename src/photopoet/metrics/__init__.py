"""Standard metrics, one module per family, each returning a dict with its primary metric first."""
