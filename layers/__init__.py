"""Thematic layers: the registry and the services built on it."""
