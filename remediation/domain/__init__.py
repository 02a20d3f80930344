"""Pure domain model: requests, cases, errors, durations and passwords. No I/O."""
