"""Stage 1: `.lmp` text <-> the typed syntax tree (parser, tree, printer)."""
