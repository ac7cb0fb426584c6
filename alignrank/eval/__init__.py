"""alignrank.eval."""
