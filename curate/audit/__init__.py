"""The `curate audit` stage: checks of the run logs that stores keep (:mod:`curate.runlog`)."""

from curate.audit.verify import AuditReport, verify_store

__all__ = ["AuditReport", "verify_store"]
