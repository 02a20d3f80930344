"""Automated remediation of Microsoft 365 accounts restricted for sending spam."""
