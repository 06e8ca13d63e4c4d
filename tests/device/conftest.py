"""Device tests use the shared fixtures in ``tests/conftest.py`` (classes in ``tests/support.py``)."""
