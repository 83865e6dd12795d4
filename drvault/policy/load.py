"""Build a :class:`~drvault.policy.model.Config` from the YAML policy file.

Everything is checked here, once, with the file and line of the offending value: the rest of
drvault trusts the frozen model.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from typing import cast

from drvault.chunker.params import AVG_SIZE_MAX
from drvault.durations import parse_duration
from drvault.errors import ConfigError, UsageError
from drvault.policy.model import (
    ARCHIVE_CLASSES,
    CLASSIFICATIONS,
    LOCK_MODES,
    MAINLAND,
    ROLES,
    STORAGE_CLASSES,
    THAW_TIERS,
    TIERS,
    BackupSet,
    Center,
    Classification,
    Config,
    Copy,
    Immutability,
    LockMode,
    Profile,
    RepositorySettings,
    Retention,
    Role,
    Site,
    Storage,
    Thresholds,
    Tier,
    TierStep,
)
from drvault.policy.tiering import COLDNESS, ladder_problems
from drvault.policy.yamlnodes import Entry, MappingReader, Value, compose
from drvault.sizes import parse_rate, parse_size
from drvault.transport.options import TransportOptions, apply_option
from drvault.transport.url import parse_s3, parse_sftp

VERSION = 1
STANDARDS = ("gbt20988-2007", "gbt20988-2025")
SECTORS = ("bank", "securities", "gov", "generic")
BANK_TIERS = ("large_cross_province", "other")
SUITES = ("intl", "gm")
INTL_CIPHERS = ("aes-256-gcm", "chacha20-poly1305")
INTL_ID_HASHES = ("blake3", "hmac-sha256")
CHUNK_AVG_MIN = 4 << 10
PACK_SIZE_MIN = 1 << 20
PACK_SIZE_MAX = 256 << 20
DAY = 86400.0

_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")

ROOT_KEYS = (
    "version",
    "state_dir",
    "metrics_file",
    "profile",
    "thresholds",
    "hazard_zones",
    "centers",
    "backup_sets",
)
PROFILE_KEYS = (
    "standard",
    "sector",
    "bank_tier",
    "mlps_level",
    "crypto_level",
    "require_gm_for",
    "mainland_only_for",
)
THRESHOLD_KEYS = (
    "same_city_km_max",
    "remote_km_min",
    "remote_km_warn",
    "require_distinct_province_for_remote",
    "min_centers",
    "min_cities",
    "dr_independence_km",
    "drill_max_age",
    "level_window",
)
CENTER_KEYS = (
    "role",
    "site",
    "url",
    "distance_km",
    "tier",
    "options",
    "limit_upload",
    "limit_download",
    "storage",
    "immutability",
)
STORAGE_KEYS = ("data_class", "metadata_class", "ladder", "thaw")
STEP_KEYS = ("after", "to")
THAW_KEYS = ("tier", "days")
IMMUTABILITY_KEYS = ("mode", "days")
SITE_KEYS = ("city", "province", "jurisdiction", "lat", "lon")
SET_KEYS = (
    "paths",
    "excludes",
    "tags",
    "classification",
    "rpo",
    "rto",
    "production",
    "password_file",
    "target_dr_level",
    "repository",
    "retention",
    "copies",
)
REPOSITORY_KEYS = ("suite", "cipher", "id_hash", "chunk_avg", "compression_level", "pack_size")
RETENTION_COUNTS = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
RETENTION_KEYS = (*RETENTION_COUNTS, "within", "tags")
COPY_KEYS = ("rpo", "retention")


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and check the policy file at ``path``."""
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"{name}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{name}: cannot read: not UTF-8 text (byte {e.start})") from None
    return parse_config(text, name)


def parse_config(text: str, path: str) -> Config:
    """Check the policy in ``text``; ``path`` names the file in messages and in the Config."""
    node = compose(text, path)
    if node is None:
        raise ConfigError(f"{path}:1: empty configuration (expected a mapping with version: 1)")
    root = MappingReader.root(node, path, ROOT_KEYS)
    version = root.required("version")
    if version.as_int() != VERSION:
        raise version.error(f"unsupported version {version.node.value} (expected {VERSION})")
    defaults = Config(path=path, centers=(), sets=())
    state_dir = root.opt_str("state_dir") or defaults.state_dir
    metrics_file = root.opt_str("metrics_file")
    profile_map = root.opt_mapping("profile", PROFILE_KEYS)
    profile = Profile() if profile_map is None else _profile(profile_map)
    thresholds_map = root.opt_mapping("thresholds", THRESHOLD_KEYS)
    thresholds = Thresholds() if thresholds_map is None else _thresholds(thresholds_map)
    centers = _centers(root.req_mapping("centers"))
    zones = root.opt_mapping("hazard_zones")
    if zones is not None:
        centers = _hazard_zones(zones, centers)
    sets = _backup_sets(root.req_mapping("backup_sets"), centers)
    root.finish()
    return Config(
        path=path,
        centers=tuple(centers.values()),
        sets=sets,
        version=VERSION,
        state_dir=state_dir,
        metrics_file=metrics_file,
        profile=profile,
        thresholds=thresholds,
    )


def _classifications(
    value: Value | None, default: tuple[Classification, ...]
) -> tuple[Classification, ...]:
    if value is None:
        return default
    return cast("tuple[Classification, ...]", value.as_str_list(choices=CLASSIFICATIONS))


def _profile(m: MappingReader) -> Profile:
    d = Profile()
    profile = Profile(
        standard=m.opt_str("standard", choices=STANDARDS) or d.standard,
        sector=m.opt_str("sector", choices=SECTORS) or d.sector,
        bank_tier=m.opt_str("bank_tier", choices=BANK_TIERS),
        mlps_level=m.opt_int("mlps_level", low=1, high=4),
        crypto_level=m.opt_int("crypto_level", low=1, high=4),
        require_gm_for=_classifications(m.optional("require_gm_for"), d.require_gm_for),
        mainland_only_for=_classifications(m.optional("mainland_only_for"), d.mainland_only_for),
    )
    m.finish()
    return profile


def _duration(value: Value, *, positive: bool = True) -> float:
    seconds = value.convert(parse_duration)
    if positive and seconds <= 0:
        raise value.error("expected a duration above zero")
    return seconds


def _thresholds(m: MappingReader) -> Thresholds:
    d = Thresholds()

    def km(key: str, default: float) -> float:
        value = m.opt_float(key, low=0)
        return default if value is None else value

    def count(key: str, default: int) -> int:
        value = m.opt_int(key, low=1)
        return default if value is None else value

    def days(key: str, default: float) -> float:
        value = m.optional(key)
        return default if value is None else _duration(value) / DAY

    distinct = m.opt_bool("require_distinct_province_for_remote")
    thresholds = Thresholds(
        same_city_km_max=km("same_city_km_max", d.same_city_km_max),
        remote_km_min=km("remote_km_min", d.remote_km_min),
        remote_km_warn=km("remote_km_warn", d.remote_km_warn),
        require_distinct_province_for_remote=(
            d.require_distinct_province_for_remote if distinct is None else distinct
        ),
        min_centers=count("min_centers", d.min_centers),
        min_cities=count("min_cities", d.min_cities),
        dr_independence_km=km("dr_independence_km", d.dr_independence_km),
        drill_max_age_days=days("drill_max_age", d.drill_max_age_days),
        level_window_days=days("level_window", d.level_window_days),
    )
    m.finish()
    return thresholds


def _check_id(entry: Entry, what: str) -> str:
    if not _ID.match(entry.name):
        raise entry.key.error(
            f"invalid {what} id {entry.name!r} (expected [a-z0-9][a-z0-9_-]*, at most 63 chars)"
        )
    return entry.name


def _unknown_center(value: Value, name: str, centers: dict[str, Center]) -> ConfigError:
    return value.error(f"unknown center {name!r} (known: {', '.join(centers)})")


def _site(m: MappingReader) -> Site:
    city = m.req_str("city")
    province = m.req_str("province")
    jurisdiction = m.opt_str("jurisdiction") or MAINLAND
    lat = m.opt_float("lat", low=-90, high=90)
    lon = m.opt_float("lon", low=-180, high=180)
    if (lat is None) != (lon is None):
        raise m.error("give both lat and lon, or neither")
    m.finish()
    return Site(city=city, province=province, jurisdiction=jurisdiction, lat=lat, lon=lon)


def _url(value: Value) -> str:
    url = value.as_str().strip()
    try:
        if url.startswith("s3:"):
            parse_s3(url)
        elif url.startswith("sftp://"):
            parse_sftp(url)
        elif "://" in url:
            scheme = url.split(":", 1)[0]
            raise value.error(
                f"unknown URL scheme {scheme!r} (known: an absolute path, s3:, sftp://)"
            )
        elif not url.startswith("/"):
            raise value.error(f"{url!r}: a local path must be absolute")
    except ConfigError:
        raise
    except UsageError as e:
        raise value.error(str(e)) from None
    return url.rstrip("/") or "/"


def _options(m: MappingReader) -> tuple[str, ...]:
    options = TransportOptions()
    assignments: list[str] = []
    for entry in m.entries():
        assignment = f"{entry.name}={entry.value.text()}"
        try:
            options = apply_option(options, assignment)
        except UsageError as e:
            raise entry.value.error(str(e)) from None
        assignments.append(assignment)
    return tuple(assignments)


def _center(entry: Entry) -> Center:
    center_id = _check_id(entry, "center")
    m = entry.value.as_mapping(CENTER_KEYS)
    role = cast(Role, m.req_str("role", choices=ROLES))
    site = _site(m.req_mapping("site", SITE_KEYS))
    distance_km = m.opt_float("distance_km", low=0)
    url = _url(m.required("url"))
    tier = cast(Tier, m.opt_str("tier", choices=TIERS) or "hot")
    options_map = m.opt_mapping("options")
    limit_upload = m.optional("limit_upload")
    limit_download = m.optional("limit_download")
    storage_map = m.opt_mapping("storage", STORAGE_KEYS)
    storage = Storage() if storage_map is None else _storage(storage_map)
    immutability_map = m.opt_mapping("immutability", IMMUTABILITY_KEYS)
    immutability = None if immutability_map is None else _immutability(immutability_map)
    if not url.startswith("s3:"):
        if storage != Storage():
            raise m.required("storage").error("storage classes need an S3 center (url s3:...)")
        if immutability is not None and immutability.mode != "append-only":
            raise m.required("immutability").error(
                f"mode {immutability.mode} is S3 Object Lock: it needs an S3 center "
                "(use append-only elsewhere)"
            )
    center = Center(
        id=center_id,
        role=role,
        site=site,
        url=url,
        where=entry.key.where,
        tier=tier,
        distance_km=distance_km,
        options=() if options_map is None else _options(options_map),
        limit_upload=None if limit_upload is None else limit_upload.convert(parse_rate),
        limit_download=None if limit_download is None else limit_download.convert(parse_rate),
        storage=storage,
        immutability=immutability,
    )
    m.finish()
    return center


def _storage_class(value: Value) -> str:
    return value.as_str(choices=STORAGE_CLASSES)


def _storage(m: MappingReader) -> Storage:
    data_class = m.optional("data_class")
    metadata = m.optional("metadata_class")
    metadata_class = None if metadata is None else _storage_class(metadata)
    if metadata is not None and metadata_class in ARCHIVE_CLASSES:
        raise metadata.error(
            f"{metadata_class} is an archive class: metadata must stay instantly readable"
        )
    steps: list[TierStep] = []
    ladder = m.optional("ladder")
    for item in ladder.items() if ladder is not None else ():
        step_map = item.as_mapping(STEP_KEYS)
        step = TierStep(
            after=_duration(step_map.required("after"), positive=False),
            to=_storage_class(step_map.required("to")),
        )
        step_map.finish()
        if steps and (step.after <= steps[-1].after or COLDNESS[step.to] <= COLDNESS[steps[-1].to]):
            raise item.error("each rung must come later and be colder than the one before")
        steps.append(step)
    thaw = m.opt_mapping("thaw", THAW_KEYS)
    tier, days = Storage.thaw_tier, Storage.thaw_days
    if thaw is not None:
        tier = thaw.opt_str("tier", choices=THAW_TIERS) or tier
        days = thaw.opt_int("days", low=1, high=30) or days
        thaw.finish()
    storage = Storage(
        data_class=None if data_class is None else _storage_class(data_class),
        metadata_class=metadata_class,
        ladder=tuple(steps),
        thaw_tier=tier,
        thaw_days=days,
    )
    errors = [p for p in ladder_problems(storage) if p.startswith("error: ")]
    if errors:
        raise (ladder or m.required("data_class")).error(errors[0].removeprefix("error: "))
    m.finish()
    return storage


def _immutability(m: MappingReader) -> Immutability:
    mode = cast(LockMode, m.req_str("mode", choices=LOCK_MODES))
    days = m.opt_int("days", low=1, high=36500)
    if mode != "append-only" and days is None:
        raise m.error(f"mode {mode} needs days (the Object Lock retention)")
    if mode == "append-only" and days is not None:
        raise m.required("days").error("append-only has no retention days")
    m.finish()
    return Immutability(mode=mode, days=days or 0)


def _centers(m: MappingReader) -> dict[str, Center]:
    centers = {entry.name: _center(entry) for entry in m.entries()}
    if not any(c.role == "production" for c in centers.values()):
        raise m.error("no center has role production")
    return centers


def _hazard_zones(m: MappingReader, centers: dict[str, Center]) -> dict[str, Center]:
    zone_of: dict[str, str] = {}
    for entry in m.entries():
        for item in entry.value.items():
            center_id = item.as_str()
            if center_id not in centers:
                raise _unknown_center(item, center_id, centers)
            if center_id in zone_of:
                raise item.error(f"center {center_id!r} is already in zone {zone_of[center_id]!r}")
            zone_of[center_id] = entry.name
    return {
        cid: replace(c, hazard_zone=zone_of[cid]) if cid in zone_of else c
        for cid, c in centers.items()
    }


def _retention(m: MappingReader) -> Retention:
    counts = {key: m.opt_int(key, low=0) for key in RETENTION_COUNTS}
    within = m.optional("within")
    tags = m.opt_str_list("tags") or ()
    m.finish()
    return Retention(
        **counts,
        within=None if within is None else _duration(within, positive=False),
        tags=tags,
    )


def _size_text(size: int) -> str:
    return f"{size >> 20}M" if size % (1 << 20) == 0 else f"{size >> 10}K"


def _size(value: Value, low: int, high: int) -> int:
    size = value.convert(parse_size)
    if not low <= size <= high:
        raise value.error(f"{size} bytes is out of range {_size_text(low)}..{_size_text(high)}")
    return size


def _repository(m: MappingReader) -> RepositorySettings:
    d = RepositorySettings()
    suite = m.opt_str("suite", choices=SUITES) or d.suite
    settings: dict[str, str | None] = {}
    for key, allowed in (("cipher", INTL_CIPHERS), ("id_hash", INTL_ID_HASHES)):
        value = m.optional(key)
        if value is not None and suite == "gm":
            raise value.error("the gm suite fixes it (SM4-GCM, HMAC-SM3): remove this key")
        settings[key] = value.as_str(choices=allowed) if value is not None else None
    chunk_avg_value = m.optional("chunk_avg")
    chunk_avg = d.chunk_avg
    if chunk_avg_value is not None:
        chunk_avg = _size(chunk_avg_value, CHUNK_AVG_MIN, AVG_SIZE_MAX)
        if chunk_avg & (chunk_avg - 1):
            raise chunk_avg_value.error(f"{chunk_avg} bytes is not a power of two")
    compression_level = m.opt_int("compression_level", low=1, high=19)
    pack_size_value = m.optional("pack_size")
    repository = RepositorySettings(
        suite=suite,
        cipher=settings["cipher"],
        id_hash=settings["id_hash"],
        chunk_avg=chunk_avg,
        compression_level=(d.compression_level if compression_level is None else compression_level),
        pack_size=(
            d.pack_size
            if pack_size_value is None
            else _size(pack_size_value, PACK_SIZE_MIN, PACK_SIZE_MAX)
        ),
    )
    m.finish()
    return repository


def _classification(value: Value) -> Classification:
    text = value.as_str()
    if text == "state_secret":
        raise value.error(
            "drvault must not hold state-secret (涉密) data: such systems fall under "
            "a separate regime; keep them out of this configuration"
        )
    return cast(Classification, value.as_str(choices=CLASSIFICATIONS))


def _production(value: Value | None, owner: Value, centers: dict[str, Center]) -> str:
    if value is None:
        producers = [cid for cid, c in centers.items() if c.role == "production"]
        if len(producers) > 1:
            raise owner.error(
                f"several production centers ({', '.join(producers)}); name one with production:"
            )
        return producers[0]
    name = value.as_str()
    if name not in centers:
        raise _unknown_center(value, name, centers)
    if centers[name].role != "production":
        raise value.error(f"center {name!r} has role {centers[name].role}, not production")
    return name


def _copies(
    m: MappingReader, production: str, rpo: float, centers: dict[str, Center]
) -> tuple[Copy, ...]:
    copies: list[Copy] = []
    for entry in m.entries():
        name = entry.name
        if name not in centers:
            raise _unknown_center(entry.key, name, centers)
        if name == production:
            raise entry.key.error(f"{name!r} is this set's production center, not a DR copy")
        if centers[name].role == "production":
            raise entry.key.error(f"{name!r} has role production: copies go to DR centers")
        copy_rpo = rpo
        retention = None
        if not entry.value.is_null:
            options = entry.value.as_mapping(COPY_KEYS)
            rpo_value = options.optional("rpo")
            if rpo_value is not None:
                copy_rpo = _duration(rpo_value)
            retention_map = options.opt_mapping("retention", RETENTION_KEYS)
            retention = None if retention_map is None else _retention(retention_map)
            options.finish()
        copies.append(Copy(center=name, rpo=copy_rpo, where=entry.key.where, retention=retention))
    return tuple(copies)


def _absolute_paths(value: Value) -> tuple[str, ...]:
    paths = value.as_str_list(non_empty=True)
    for item, path in zip(value.items(), paths, strict=True):
        if not path.startswith("/"):
            raise item.error(f"{path!r}: backup paths must be absolute")
    return paths


def _backup_set(entry: Entry, centers: dict[str, Center]) -> BackupSet:
    set_id = _check_id(entry, "backup set")
    m = entry.value.as_mapping(SET_KEYS)
    paths = _absolute_paths(m.required("paths"))
    excludes = m.opt_str_list("excludes") or ()
    tags = m.opt_str_list("tags") or ()
    classification = _classification(m.required("classification"))
    rpo = _duration(m.required("rpo"))
    rto = _duration(m.required("rto"))
    production = _production(m.optional("production"), entry.value, centers)
    password_file = m.opt_str("password_file")
    target_dr_level = m.opt_int("target_dr_level", low=1, high=6)
    repository_map = m.opt_mapping("repository", REPOSITORY_KEYS)
    retention_map = m.opt_mapping("retention", RETENTION_KEYS)
    copies_map = m.opt_mapping("copies")
    backup_set = BackupSet(
        id=set_id,
        paths=paths,
        classification=classification,
        rpo=rpo,
        rto=rto,
        where=entry.key.where,
        production=production,
        copies=() if copies_map is None else _copies(copies_map, production, rpo, centers),
        excludes=excludes,
        tags=tags,
        password_file=password_file,
        repository=(
            RepositorySettings() if repository_map is None else _repository(repository_map)
        ),
        retention=None if retention_map is None else _retention(retention_map),
        target_dr_level=target_dr_level,
    )
    m.finish()
    return backup_set


def _backup_sets(m: MappingReader, centers: dict[str, Center]) -> tuple[BackupSet, ...]:
    return tuple(_backup_set(entry, centers) for entry in m.entries())
