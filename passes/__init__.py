"""Passes: IR -> IR transformations, registered by name in `lmc.plugins.PASSES`."""
