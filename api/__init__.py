"""HTTP API routes (Flask, on the Dash server)."""
