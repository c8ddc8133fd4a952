"""lmc: a compiler for language-model programs."""
