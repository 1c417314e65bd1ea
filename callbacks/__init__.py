"""Dash page areas: each module exposes `layout(settings)` pieces and `register(app)`."""
