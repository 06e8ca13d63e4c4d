"""Shared fixtures. Each area adds its fixtures in its own ``tests/<area>/conftest.py``."""
