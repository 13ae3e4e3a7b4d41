"""Training of the student fusion network: degradations, losses, data, the accelerate-based trainer, the CLI."""
