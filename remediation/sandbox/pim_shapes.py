"""What Graph's PIM reads answer a tenant that cannot give PIM data, shape by shape.

The reads (``SandboxTenant.pim_refusals`` maps one to a shape; ``pim_licensed = False`` is
``licence`` for all of them):

- ``role_eligibility``: ``/roleManagement/directory/roleEligibilityScheduleInstances``;
- ``group_eligibility`` / ``group_assignments``:
  ``/identityGovernance/privilegedAccess/group/eligibilityScheduleInstances`` /
  ``.../assignmentScheduleInstances`` (PIM for Groups).

The shapes:

- ``licence``: ``400 AadPremiumLicenseRequired`` "The tenant needs to have Microsoft Entra ID
  P2 or Microsoft Entra ID Governance license." (maester365/maester#1421 for role
  eligibility; for PIM for Groups, a public assessment module's
  ``Get-OagM365IamPimGroupEligibility`` matches the same code on its eligibility list);
- ``not_onboarded``: "The tenant has not onboarded to PIM." with code
  ``UnauthorizedAccessException`` (MicrosoftDocs/azure-docs#50033; microsoft/EntraExporter#61
  ignores it on ``privilegedAccess/azureResources/resources``). The status is not quoted
  anywhere: 400 here;
- ``unsupported``: ``400 ResourceTypeNotSupported`` (a code other PIM APIs have answered; no
  sample of its message was found: the message is ours).

Which of these the product takes for "no PIM data" is decided, with the reasons, in
remediation/adapters/graph_roles.py.
"""

from __future__ import annotations

READS = ("role_eligibility", "group_eligibility", "group_assignments")
LICENCE, NOT_ONBOARDED, UNSUPPORTED = "licence", "not_onboarded", "unsupported"
# shape -> (status, code, message)
SHAPES: dict[str, tuple[int, str, str]] = {
    LICENCE: (400, "AadPremiumLicenseRequired",
              "The tenant needs to have Microsoft Entra ID P2 or Microsoft Entra ID Governance "
              "license."),
    NOT_ONBOARDED: (400, "UnauthorizedAccessException", "The tenant has not onboarded to PIM."),
    UNSUPPORTED: (400, "ResourceTypeNotSupported",
                  "The resource type is not supported for this request."),
}


def check(refusals: dict[str, str]) -> None:
    """Raise ValueError for a read or a shape this module does not know."""
    for read, shape in refusals.items():
        if read not in READS:
            raise ValueError(f"unknown PIM read {read!r}; one of {', '.join(READS)}")
        if shape not in SHAPES:
            raise ValueError(f"unknown PIM shape {shape!r}; one of {', '.join(SHAPES)}")
