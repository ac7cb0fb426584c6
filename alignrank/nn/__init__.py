"""Model code: the head registry, the CSD-Head modules and ``AlignRankModel``."""
