"""Health checks: periodic cheap probes of every target of a client, combined with its
circuit state. See :mod:`ailib_anyio._services._health`::

    from ailib_anyio.health import HealthChecker

    async with open_client("openai/gpt-4o") as client:
        checker = HealthChecker(client, interval=30.0)
        await checker.start()          # cancelled with the client
        report = checker.status()      # HealthReport: .status, .targets[i].status ...
"""

import attrs as _attrs

from ._services._health import HealthChecker as HealthChecker
from ._services._health import HealthReport as HealthReport
from ._services._health import HealthStatus as HealthStatus
from ._services._health import Probe as Probe
from ._services._health import TargetHealth as TargetHealth
from ._services._health import chat_probe as chat_probe

__all__ = [
    "HealthChecker",
    "HealthReport",
    "HealthStatus",
    "Probe",
    "TargetHealth",
    "chat_probe",
]

# Annotations are resolved in the private module, every class before any is renamed (a
# subclass's hints are read in its bases' modules); then tracebacks and reprs say
# ailib_anyio.health.HealthChecker.
for _name in __all__:
    _obj = globals()[_name]
    if _attrs.has(_obj):
        _attrs.resolve_types(_obj)
for _name in __all__:
    _obj = globals()[_name]
    if _name != "Probe":  # a type alias keeps typing's module
        _obj.__module__ = __name__
del _name, _obj
