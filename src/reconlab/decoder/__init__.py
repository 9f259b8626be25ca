"""Feature inversion: a tiny conv decoder from cached patch features back to RGB (issue 4)."""
