"""The policy configuration as frozen values: centers, backup sets, copies, thresholds.

``drvault.policy.load`` builds a :class:`Config` from YAML and rejects anything malformed with
the file and line; everything downstream (backup, replicate, status) reads these values only.
Durations are seconds (float), sizes and rates bytes (int), distances kilometres (float).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeVar

from drvault.errors import UsageError

Role = Literal["production", "same_city_dr", "remote_dr", "archive_vault"]
Tier = Literal["hot", "warm", "cold"]
Classification = Literal["core", "important", "general"]

ROLES: tuple[Role, ...] = ("production", "same_city_dr", "remote_dr", "archive_vault")
TIERS: tuple[Tier, ...] = ("hot", "warm", "cold")
CLASSIFICATIONS: tuple[Classification, ...] = ("core", "important", "general")
MAINLAND = "CN-mainland"
_T = TypeVar("_T", "Center", "BackupSet")


@dataclass(frozen=True)
class Where:
    """A place in the configuration file, for messages: ``drvault.yaml:14``."""

    file: str
    line: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Site:
    city: str
    province: str
    jurisdiction: str = MAINLAND  # e.g. CN-mainland, HK, or a country code
    lat: float | None = None
    lon: float | None = None


ARCHIVE_CLASSES = ("GLACIER", "DEEP_ARCHIVE")  # a GET needs a thaw (RestoreObject) first
STORAGE_CLASSES = (
    "STANDARD",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER_IR",
    *ARCHIVE_CLASSES,
)
THAW_TIERS = ("Expedited", "Standard", "Bulk")
LockMode = Literal["compliance", "governance", "append-only"]
LOCK_MODES: tuple[LockMode, ...] = ("compliance", "governance", "append-only")


@dataclass(frozen=True)
class TierStep:
    """One rung of a center's ladder: data packs older than ``after`` move to ``to``."""

    after: float  # seconds since the pack landed at the center
    to: str  # S3 storage class


@dataclass(frozen=True)
class Storage:
    """Storage classes at an S3 center. Metadata (trees, index, snapshots) always stays in an
    instantly readable class; only data packs climb the ladder."""

    data_class: str | None = None  # landing class of data packs; None: the bucket's default
    metadata_class: str | None = None  # never an archive class
    ladder: tuple[TierStep, ...] = ()  # ascending ``after``
    thaw_tier: str = "Standard"  # Expedited | Standard | Bulk
    thaw_days: int = 7  # how long a thawed copy stays readable


@dataclass(frozen=True)
class Immutability:
    """What protects a center's objects from deletion.

    ``compliance``/``governance``: S3 Object Lock retention of ``days`` on every object written,
    extended while a kept snapshot needs it. ``append-only``: drvault never deletes or overwrites
    there (any transport; enforced by drvault, not by the server)."""

    mode: LockMode
    days: int = 0


@dataclass(frozen=True)
class Center:
    id: str
    role: Role
    site: Site
    url: str  # root of the center's storage; backup set S lives at <url>/<S>
    where: Where
    tier: Tier = "hot"
    distance_km: float | None = None  # to the production center, when no coordinates are given
    hazard_zone: str | None = None  # from the top-level hazard_zones mapping
    options: tuple[str, ...] = ()  # transport "-o KEY=VALUE" assignments (credentials by reference)
    limit_upload: int | None = None  # bytes per second
    limit_download: int | None = None  # bytes per second
    storage: Storage = field(default_factory=Storage)
    immutability: Immutability | None = None


@dataclass(frozen=True)
class Retention:
    """Which snapshots a center keeps (applied by forget/prune; all None keeps everything)."""

    last: int | None = None
    hourly: int | None = None
    daily: int | None = None
    weekly: int | None = None
    monthly: int | None = None
    yearly: int | None = None
    within: float | None = None  # seconds
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Copy:
    """One DR center that holds a backup set, with that copy's own RPO."""

    center: str
    rpo: float  # seconds; defaults to the set's RPO
    where: Where
    retention: Retention | None = None  # None: the set's retention


@dataclass(frozen=True)
class RepositorySettings:
    """How the set's repositories are created (the same at every center: packs are copied)."""

    suite: str = "intl"  # intl | gm
    cipher: str | None = None  # intl: aes-256-gcm | chacha20-poly1305
    id_hash: str | None = None  # intl: blake3 | hmac-sha256
    chunk_avg: int = 64 << 10  # power of two
    compression_level: int = 3
    pack_size: int = 16 << 20


@dataclass(frozen=True)
class BackupSet:
    id: str
    paths: tuple[str, ...]
    classification: Classification
    rpo: float  # seconds
    rto: float  # seconds
    where: Where
    production: str  # id of the production center holding the primary repository
    copies: tuple[Copy, ...] = ()  # DR copies (never the production center)
    excludes: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    password_file: str | None = None  # credential by reference; None: DRVAULT_PASSWORD_FILE
    repository: RepositorySettings = field(default_factory=RepositorySettings)
    retention: Retention | None = None
    target_dr_level: int | None = None  # GB/T 20988 level the set must reach


@dataclass(frozen=True)
class Profile:
    """Which rulebook the compliance checks apply."""

    standard: str = "gbt20988-2007"  # gbt20988-2007 | gbt20988-2025
    sector: str = "generic"  # bank | securities | gov | generic
    bank_tier: str | None = None  # large_cross_province | other (CBRC 2010 Art. 7)
    mlps_level: int | None = None  # GB/T 22239 level of the protected system
    crypto_level: int | None = None  # GB/T 39786 level
    require_gm_for: tuple[Classification, ...] = ("core",)
    mainland_only_for: tuple[Classification, ...] = ("core", "important")


@dataclass(frozen=True)
class Thresholds:
    same_city_km_max: float = 100.0  # "一般距离数十公里" (CBRC 2010 Art. 3)
    remote_km_min: float = 300.0  # "一般距离在数百公里以上"
    remote_km_warn: float = 500.0  # warn below this, fail below remote_km_min
    require_distinct_province_for_remote: bool = True
    min_centers: int = 3
    min_cities: int = 2
    dr_independence_km: float = 200.0  # two off-site DR centers closer than this: a warning
    drill_max_age_days: float = 365.0  # CBRC 2010 Art. 34: a drill at least yearly
    level_window_days: float = 30.0  # look-back window of the GB/T 20988 estimate


@dataclass(frozen=True)
class Config:
    path: str
    centers: tuple[Center, ...]
    sets: tuple[BackupSet, ...]
    version: int = 1
    state_dir: str = "/var/lib/drvault"  # locks and run records of replicate
    metrics_file: str | None = None  # Prometheus textfile written after replicate and status
    profile: Profile = field(default_factory=Profile)
    thresholds: Thresholds = field(default_factory=Thresholds)

    def center(self, center_id: str) -> Center:
        """The center ``center_id``; an unknown one is a usage error listing the known."""
        return _find(self.centers, center_id, "center")

    def backup_set(self, set_id: str) -> BackupSet:
        """The backup set ``set_id``; an unknown one is a usage error listing the known."""
        return _find(self.sets, set_id, "backup set")

    def holders(self, backup_set: BackupSet) -> tuple[Center, ...]:
        """Every center that must hold the set: production first, then the copies in order."""
        copies = (self.center(c.center) for c in backup_set.copies)
        return (self.center(backup_set.production), *copies)


def _find(items: tuple[_T, ...], item_id: str, kind: str) -> _T:
    for item in items:
        if item.id == item_id:
            return item
    known = ", ".join(i.id for i in items)
    raise UsageError(f"unknown {kind} {item_id!r} (known: {known})")
