"""Stage 2: the typed program graph, its checks (lowering from syntax) and its text form."""
