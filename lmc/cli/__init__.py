"""The `lmc` command line: one module per command, shared options in `lmc.cli.options`."""
