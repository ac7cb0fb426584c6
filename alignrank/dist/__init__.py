"""alignrank.dist."""
