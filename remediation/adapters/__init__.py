"""Adapters: the ports implemented with real services and their local twins."""
