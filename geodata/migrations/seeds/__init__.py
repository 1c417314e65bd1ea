"""Frozen seed data of the migrations (never the live catalogue)."""
