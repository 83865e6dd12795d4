"""Distances between centers: great-circle from coordinates, or as the configuration states.

The regulations speak of kilometres between sites ("数十公里", "数百公里以上"); cable routes
are longer than the great circle, so a distance measured here is a lower bound and the
thresholds compare against it.
"""

from __future__ import annotations

import math

from drvault.policy.model import Center

EARTH_RADIUS_KM = 6371.0088  # mean radius (IUGG)


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance in kilometres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def distance_km(a: Center, b: Center) -> float | None:
    """Kilometres between two centers, or None when the configuration cannot tell.

    Coordinates on both sides win; otherwise a stated ``distance_km`` (which is the distance to
    the production center) answers when the other center is the production center.
    """
    if a.id == b.id:
        return 0.0
    sa, sb = a.site, b.site
    if None not in (sa.lat, sa.lon, sb.lat, sb.lon):
        return great_circle_km(sa.lat, sa.lon, sb.lat, sb.lon)  # type: ignore[arg-type]
    if b.role == "production" and a.distance_km is not None:
        return a.distance_km
    if a.role == "production" and b.distance_km is not None:
        return b.distance_km
    return None
