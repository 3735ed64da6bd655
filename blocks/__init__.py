"""Prefect Block types: one per external system the panel talks to.

They show in the Prefect UI's block catalog (registered through the
`prefect.collections` entry point) and hold credentials as `SecretStr`, which the
Prefect API obfuscates and which never appear in logs or facade responses.
"""

from __future__ import annotations

from blocks.systems import DVCRemote, MLflowTracking, ProjectDatabase

__all__ = ["DVCRemote", "MLflowTracking", "ProjectDatabase"]
