"""drvault: deduplicated, compressed, encrypted backups and disaster-recovery copies."""
