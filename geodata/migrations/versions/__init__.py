"""Migration revisions; each reads only its own frozen data (see ../seeds)."""
