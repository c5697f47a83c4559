"""backflush: backflush costing for lean, high-volume manufacturers."""

__version__ = "0.1.0"
