"""Training libraries that produce deployable networks (BSTDG binarized single-spike networks)."""
