"""``python -m drvault``."""

from drvault.cli import main

main()
