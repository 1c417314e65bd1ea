"""Importers, the demo-city generator and the command line (`python -m loaders …`)."""
