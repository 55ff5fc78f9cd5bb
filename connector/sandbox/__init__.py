"""A strict local emulator of the Rokt Event API (mParticle's server-to-server `/v2`) and of
the pixel endpoints, run by `rokt-connector sandbox`: the public names of the package (see
docs/sandbox.md and the README's "Rehearse without credentials: the sandbox").
"""

from connector.sandbox.app import create_app
from connector.sandbox.events_api import REJECTED_BY_SANDBOX
from connector.sandbox.faults import FAULTS
from connector.sandbox.reply import Reply
from connector.sandbox.server import serve
from connector.sandbox.settings import SandboxSettings
from connector.sandbox.state import Sandbox

__all__ = [
    "FAULTS",
    "REJECTED_BY_SANDBOX",
    "Reply",
    "Sandbox",
    "SandboxSettings",
    "create_app",
    "serve",
]
