"""Passes: IR -> IR transformations, registered by name (see `lmc.passes.registry`)."""
