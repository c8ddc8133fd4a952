"""The `.lmp` grammar, shipped as package data (`lmp.lark`)."""
