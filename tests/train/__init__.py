"""BSTDG training tests (a package, so its module names do not clash with tests/frontend)."""
