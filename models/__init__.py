"""geoship's shared vocabulary: tables, schemas, the tool tree, settings and errors.

Importing this package has no side effects: no engine is built and no settings are read
until `get_settings()` or `get_engine()` is called.
"""
