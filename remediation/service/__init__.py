"""The workflow and its ports. Imports nothing from adapters or Azure SDKs."""
