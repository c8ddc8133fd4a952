"""Backends: lower a step to the request an LM wants and parse its reply."""
