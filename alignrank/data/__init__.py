"""alignrank.data."""
