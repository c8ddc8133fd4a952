"""The runtime: runs a program graph on an LM through a backend, with a cache and a trace."""
