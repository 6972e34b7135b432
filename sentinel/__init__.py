"""Config, CLI, component wiring, embedded all-in-one mode and the read API."""
