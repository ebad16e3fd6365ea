"""The command line: ``python -m ailib_anyio`` and the ``ailib-anyio`` script."""
