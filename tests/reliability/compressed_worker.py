"""``python -m remediation`` for the crash scenario, with the password reset's claim lease
compressed as the suite compresses the back-off.

The reset step is claimed in the journal for ``securing.RESET_LEASE`` (10 minutes), and the
case itself for ``case_lease.CASE_LEASE`` (as long): a worker killed while it holds a claim
keeps the next worker from the case until the lease runs out (the other deliveries are kept
meanwhile, each asking again at the first back-off). In production that back-off is 30 s
against a 10 minute lease; with the suite's 0.1 s back-off, both leases are compressed too
(``RESET_LEASE_SECONDS``), so the case moves on within the run, as in production.
"""

import os
import sys
from datetime import timedelta

from remediation.entrypoints.cli import main
from remediation.service import case_lease, securing

if __name__ == "__main__":
    lease = timedelta(seconds=float(os.environ["RESET_LEASE_SECONDS"]))
    securing.RESET_LEASE = case_lease.CASE_LEASE = lease
    sys.exit(main(sys.argv[1:]))
