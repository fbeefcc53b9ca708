"""Subcommands of `cedar-hf`, one module each with `register(app)`."""
