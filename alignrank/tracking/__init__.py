"""alignrank.tracking."""
