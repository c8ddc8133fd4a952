"""Stage 4: compile sessions, checkpoints and artifacts (passes run inside a session)."""
