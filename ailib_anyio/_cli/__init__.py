"""The command line: the ``ailib`` and ``ailib-anyio`` scripts and ``python -m ailib_anyio``
(``_entry.main``): the full ``ailib`` of ``_app`` with the ``cli`` extra, else the plain
commands of ``_main``."""
