"""Health checks: periodic cheap probes of every target of a client, combined with its
circuit state. See :mod:`ailib_anyio._services._health`::

    from ailib_anyio.health import HealthChecker

    async with open_client("openai/gpt-4o") as client:
        checker = HealthChecker(client, interval=30.0)
        await checker.start()          # cancelled with the client
        report = checker.status()      # HealthReport: .status, .targets[i].status ...
"""

from ._core._publish import publish
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

publish(__name__, globals(), __all__)
