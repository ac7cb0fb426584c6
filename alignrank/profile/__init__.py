"""alignrank.profile."""
