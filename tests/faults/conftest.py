"""Fault tests use the shared fixtures in ``tests/conftest.py`` (classes in ``tests/support.py``): the broker,
subscribers, daemon processes (``daemons`` takes ``env=`` and ``preexec=`` for NOTIFY_SOCKET and resource
limits), the clip and its frames as an image folder, the sd_notify listener and a throwaway TLS authority."""
