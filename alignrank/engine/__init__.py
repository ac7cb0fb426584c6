"""alignrank.engine."""
