"""Services shared by the JSON API and the Dash pages: one function per behaviour, checks included.

Each takes a connection, the signed-in user and untrusted raw values (query parameters or callback
inputs), parses them (params.py), applies the role and area rules (auth.access) and returns plain
data. The Flask blueprints and the Dash callbacks only translate to and from their transport, so a
rule cannot be enforced on one path and forgotten on the other.
"""
