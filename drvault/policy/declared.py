"""``policy check``: can the declared configuration comply at all?

The same topology rules as ``status``, applied to the centers the configuration says hold each
set, plus what the configuration alone decides: the crypto suite a set's repositories are
created with, and whether the copies' RPOs can meet the set's RPO.
"""

from __future__ import annotations

from drvault.durations import format_duration
from drvault.policy.checks import Check
from drvault.policy.model import BackupSet, Config
from drvault.policy.topology import topology_checks


def declared_checks(config: Config, backup_set: BackupSet) -> list[Check]:
    out = topology_checks(config, backup_set, list(config.holders(backup_set)))
    suite = backup_set.repository.suite
    if backup_set.classification in config.profile.require_gm_for:
        out.append(
            Check(
                "gm-suite",
                "pass" if suite == "gm" else "fail",
                f"{backup_set.classification} data requires the gm suite; configured: {suite}",
            )
        )
    if backup_set.copies:
        best = min(c.rpo for c in backup_set.copies)
        out.append(
            Check(
                "business-rpo",
                "pass" if best <= backup_set.rpo else "fail",
                f"tightest copy RPO {format_duration(best)}, "
                f"set RPO {format_duration(backup_set.rpo)}",
            )
        )
    if config.profile.sector == "bank" and backup_set.classification in ("core", "important"):
        ceiling_rto, ceiling_rpo = 4 * 3600.0, 1800.0  # BCM 2011 Art. 25, important business
        if backup_set.rto > ceiling_rto or backup_set.rpo > ceiling_rpo:
            out.append(
                Check(
                    "bank-bcm",
                    "warn",
                    "CBRC 2011 Art. 25 caps important business at RTO 4h / RPO 30m; "
                    f"set has RTO {format_duration(backup_set.rto)}, "
                    f"RPO {format_duration(backup_set.rpo)}",
                )
            )
    return out
