"""CLI command groups that live beside their library code; each module has ``register(app)``."""
