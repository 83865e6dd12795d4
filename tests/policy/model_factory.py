"""Configurations built in code for the pure policy tests: a Guangzhou bank with a same-city
center, a remote center at Dongjiang Lake and an archive vault at Shaoguan."""

from __future__ import annotations

from dataclasses import replace

from drvault.policy.model import (
    BackupSet,
    Center,
    Config,
    Copy,
    Profile,
    RepositorySettings,
    Site,
    Where,
)

HERE = Where("test.yaml", 1)
HOUR = 3600.0


def center(
    cid: str, role: str, city: str, province: str, lat: float, lon: float, **kw: object
) -> Center:
    return Center(
        id=cid,
        role=role,  # type: ignore[arg-type]
        site=Site(city=city, province=province, lat=lat, lon=lon),
        url=f"/srv/{cid}",
        where=HERE,
        **kw,  # type: ignore[arg-type]
    )


PROD = center("gz-prod", "production", "Guangzhou", "Guangdong", 23.13, 113.26)
SAME = center("gz-dr2", "same_city_dr", "Guangzhou", "Guangdong", 23.35, 113.45)
REMOTE = center("zixing-djh", "remote_dr", "Zixing", "Hunan", 25.97, 113.40, hazard_zone="nanling")
VAULT = center(
    "shaoguan-sdv", "archive_vault", "Shaoguan", "Guangdong", 24.81, 113.60, hazard_zone="nanling"
)


def ledger(**kw: object) -> BackupSet:
    base = BackupSet(
        id="core-ledger",
        paths=("/srv/db",),
        classification="core",
        rpo=0.5 * HOUR,
        rto=4 * HOUR,
        where=HERE,
        production="gz-prod",
        copies=(Copy("gz-dr2", 0.5 * HOUR, HERE), Copy("zixing-djh", 2 * HOUR, HERE)),
        repository=RepositorySettings(suite="gm"),
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def config(*centers: Center, sets: tuple[BackupSet, ...] | None = None, **kw: object) -> Config:
    return Config(
        path="test.yaml",
        centers=centers or (PROD, SAME, REMOTE),
        sets=sets if sets is not None else (ledger(),),
        profile=kw.pop("profile", Profile(sector="bank", bank_tier="large_cross_province")),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )
