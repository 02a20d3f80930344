"""A local stand-in for a Microsoft 365 tenant: the Graph and Exchange REST subset we use."""

from remediation.sandbox.faults import Fault
from remediation.sandbox.seed import BREAK_GLASS_GROUP_ID, demo_tenant
from remediation.sandbox.server import SandboxServer, serve_forever
from remediation.sandbox.state import BlockBehaviour, RecordedRequest, SandboxTenant, SandboxUser

__all__ = [
    "BREAK_GLASS_GROUP_ID",
    "BlockBehaviour",
    "Fault",
    "RecordedRequest",
    "SandboxServer",
    "SandboxTenant",
    "SandboxUser",
    "demo_tenant",
    "serve_forever",
]
