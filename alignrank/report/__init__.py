"""alignrank.report."""
