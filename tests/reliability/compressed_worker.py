"""``python -m remediation`` for the crash scenario, with the password reset's claim lease
compressed as the suite compresses the back-off.

The reset step is claimed in the journal for ``securing.RESET_LEASE`` (10 minutes): a worker
killed while it holds the claim keeps the next worker from resetting until the lease runs
out. In production the retries of one request span about 75 minutes (RETRY_BACKOFF 30 s,
doubling, 10 deliveries), so the lease runs out long before they do; with the suite's 0.1 s
back-off they would span under a minute, so the lease is compressed too
(``RESET_LEASE_SECONDS``), keeping it shorter than the retries, as in production.
"""

import os
import sys
from datetime import timedelta

from remediation.entrypoints.cli import main
from remediation.service import securing

if __name__ == "__main__":
    securing.RESET_LEASE = timedelta(seconds=float(os.environ["RESET_LEASE_SECONDS"]))
    sys.exit(main(sys.argv[1:]))
