"""The retention engine against golden tables worked out by hand.

The main fixture is a year of hourly snapshots in UTC+8: 2025-11-22 00:30 to 2026-11-21 23:30
(365 whole local days, 24 snapshots each), judged at 2026-11-22 00:30. Calendar facts the
tables rest on: 2026-11-21 is a Saturday in ISO week 2026-W47 (Mon 16 - Sun 22 Nov); 2026 starts
on a Thursday, so it has 53 ISO weeks and 2026-W53 runs Mon 28 Dec 2026 - Sun 3 Jan 2027.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta, timezone, tzinfo

import pytest

from drvault.policy.model import Retention
from drvault.policy.retention import Decision, Item, decide, describe, is_empty

CST = timezone(timedelta(hours=8))  # fixed offset: no tzdata needed
HOUR = 3600.0
DAY = 86400.0


def at(local: str, tz: tzinfo = CST) -> float:
    """Epoch seconds of a wall-clock time such as ``2026-11-21T23:30`` in ``tz``."""
    return datetime.fromisoformat(local).replace(tzinfo=tz).timestamp()


def iso(t: float, tz: tzinfo = CST) -> str:
    return datetime.fromtimestamp(t, tz).strftime("%Y-%m-%dT%H:%M")


def sid(n: int) -> bytes:
    return n.to_bytes(32, "big")


def kept(decisions: list[Decision], tz: tzinfo = CST) -> list[str]:
    return [iso(d.item.time, tz) for d in decisions if d.keep]


def why(decisions: list[Decision]) -> dict[str, tuple[str, ...]]:
    return {iso(d.item.time): d.reasons for d in decisions}


START = at("2025-11-22T00:30")
YEAR = tuple(Item(sid(i), START + i * HOUR) for i in range(8760))
NOW = at("2026-11-22T00:30")  # one hour after the newest snapshot


def run(policy: Retention, items: tuple[Item, ...] = YEAR, tz: tzinfo = CST) -> list[Decision]:
    return decide(policy, items, NOW, tz)


def test_year_fixture_is_what_the_tables_assume() -> None:
    assert (iso(YEAR[0].time), iso(YEAR[-1].time)) == ("2025-11-22T00:30", "2026-11-21T23:30")


def test_last_24_keeps_the_newest_day() -> None:
    decisions = run(Retention(last=24))
    assert kept(decisions) == [f"2026-11-21T{h:02d}:30" for h in range(23, -1, -1)]
    reasons = why(decisions)
    assert reasons["2026-11-21T23:30"] == ("last #1",)
    assert reasons["2026-11-21T00:30"] == ("last #24",)
    assert reasons["2026-11-20T23:30"] == ("matches no rule",)
    assert len(decisions) == 8760 and sum(not d.keep for d in decisions) == 8760 - 24


def test_daily_7_keeps_the_last_snapshot_of_each_of_seven_days() -> None:
    decisions = run(Retention(daily=7))
    assert kept(decisions) == [
        "2026-11-21T23:30",
        "2026-11-20T23:30",
        "2026-11-19T23:30",
        "2026-11-18T23:30",
        "2026-11-17T23:30",
        "2026-11-16T23:30",
        "2026-11-15T23:30",
    ]
    reasons = why(decisions)
    assert reasons["2026-11-21T23:30"] == ("daily #1 (2026-11-21)",)
    assert reasons["2026-11-19T23:30"] == ("daily #3 (2026-11-19)",)
    assert reasons["2026-11-15T23:30"] == ("daily #7 (2026-11-15)",)
    assert reasons["2026-11-21T22:30"] == ("matches no rule",)


def test_daily_weekly_monthly_yearly_golden_table() -> None:
    decisions = run(Retention(daily=7, weekly=4, monthly=12, yearly=3))
    d1 = ("daily #1 (2026-11-21)", "weekly #1 (2026-W47)", "monthly #1 (2026-11)")
    expected = {
        "2026-11-21T23:30": (*d1, "yearly #1 (2026)"),
        "2026-11-20T23:30": ("daily #2 (2026-11-20)",),
        "2026-11-19T23:30": ("daily #3 (2026-11-19)",),
        "2026-11-18T23:30": ("daily #4 (2026-11-18)",),
        "2026-11-17T23:30": ("daily #5 (2026-11-17)",),
        "2026-11-16T23:30": ("daily #6 (2026-11-16)",),
        "2026-11-15T23:30": ("daily #7 (2026-11-15)", "weekly #2 (2026-W46)"),
        "2026-11-08T23:30": ("weekly #3 (2026-W45)",),
        "2026-11-01T23:30": ("weekly #4 (2026-W44)",),
        "2026-10-31T23:30": ("monthly #2 (2026-10)",),
        "2026-09-30T23:30": ("monthly #3 (2026-09)",),
        "2026-08-31T23:30": ("monthly #4 (2026-08)",),
        "2026-07-31T23:30": ("monthly #5 (2026-07)",),
        "2026-06-30T23:30": ("monthly #6 (2026-06)",),
        "2026-05-31T23:30": ("monthly #7 (2026-05)",),
        "2026-04-30T23:30": ("monthly #8 (2026-04)",),
        "2026-03-31T23:30": ("monthly #9 (2026-03)",),
        "2026-02-28T23:30": ("monthly #10 (2026-02)",),
        "2026-01-31T23:30": ("monthly #11 (2026-01)",),
        "2025-12-31T23:30": ("monthly #12 (2025-12)", "yearly #2 (2025)"),
    }
    assert {iso(d.item.time): d.reasons for d in decisions if d.keep} == expected
    assert kept(decisions) == list(expected)  # newest first
    # only two calendar years have snapshots: yearly 3 stops at #2; November 2025 is past #12
    assert why(decisions)["2025-11-30T23:30"] == ("matches no rule",)


def test_hourly_48_daily_14() -> None:
    decisions = run(Retention(hourly=48, daily=14))
    names = kept(decisions)
    assert len(names) == 60  # 48 hours of 20-21 Nov, plus the last of 8-19 Nov
    assert names[:3] == ["2026-11-21T23:30", "2026-11-21T22:30", "2026-11-21T21:30"]
    assert names[46:50] == [
        "2026-11-20T01:30",
        "2026-11-20T00:30",
        "2026-11-19T23:30",
        "2026-11-18T23:30",
    ]
    assert names[-2:] == ["2026-11-09T23:30", "2026-11-08T23:30"]
    reasons = why(decisions)
    assert reasons["2026-11-21T23:30"] == ("hourly #1 (2026-11-21 23h)", "daily #1 (2026-11-21)")
    assert reasons["2026-11-21T19:30"] == ("hourly #5 (2026-11-21 19h)",)
    assert reasons["2026-11-20T23:30"] == ("hourly #25 (2026-11-20 23h)", "daily #2 (2026-11-20)")
    assert reasons["2026-11-20T00:30"] == ("hourly #48 (2026-11-20 00h)",)
    assert reasons["2026-11-19T23:30"] == ("daily #3 (2026-11-19)",)
    assert reasons["2026-11-19T22:30"] == ("matches no rule",)
    assert reasons["2026-11-08T23:30"] == ("daily #14 (2026-11-08)",)


def test_within_3d_is_measured_from_now_and_includes_the_boundary() -> None:
    decisions = run(Retention(within=3 * DAY))
    names = kept(decisions)
    assert len(names) == 72
    assert (names[0], names[-1]) == ("2026-11-21T23:30", "2026-11-19T00:30")  # exactly now - 3d
    reasons = why(decisions)
    assert reasons["2026-11-19T00:30"] == ("within 3d",)
    assert reasons["2026-11-18T23:30"] == ("matches no rule",)


def test_within_counts_from_now_not_from_the_newest_snapshot() -> None:
    later = NOW + 10 * DAY
    decisions = decide(Retention(within=3 * DAY), YEAR, later, CST)
    assert kept(decisions) == ["2026-11-21T23:30"]
    assert decisions[0].reasons == ("newest (never forgotten)",)


def test_within_2d_monthly_6() -> None:
    decisions = run(Retention(within=2 * DAY, monthly=6))
    names = kept(decisions)
    assert len(names) == 53  # 48 within, plus the last of Oct, Sep, Aug, Jul, Jun
    assert (names[0], names[47]) == ("2026-11-21T23:30", "2026-11-20T00:30")
    assert names[48:] == [
        "2026-10-31T23:30",
        "2026-09-30T23:30",
        "2026-08-31T23:30",
        "2026-07-31T23:30",
        "2026-06-30T23:30",
    ]
    reasons = why(decisions)
    assert reasons["2026-11-21T23:30"] == ("monthly #1 (2026-11)", "within 2d")
    assert reasons["2026-11-20T00:30"] == ("within 2d",)
    assert reasons["2026-06-30T23:30"] == ("monthly #6 (2026-06)",)
    assert reasons["2026-05-31T23:30"] == ("matches no rule",)


def test_tags_keep_any_snapshot_carrying_a_listed_tag() -> None:
    tagged = {
        at("2026-06-01T00:30"): ("audit", "monthly-close"),
        at("2026-01-01T00:30"): ("monthly-close",),
        at("2025-12-24T12:30"): ("audit",),
        at("2025-12-25T12:30"): ("adhoc",),
    }
    items = tuple(Item(i.id, i.time, tagged.get(i.time, ())) for i in YEAR)
    decisions = run(Retention(last=1, tags=("monthly-close", "audit")), items)
    assert {iso(d.item.time): d.reasons for d in decisions if d.keep} == {
        "2026-11-21T23:30": ("last #1",),
        "2026-06-01T00:30": ("tag monthly-close", "tag audit"),
        "2026-01-01T00:30": ("tag monthly-close",),
        "2025-12-24T12:30": ("tag audit",),
    }


def test_time_zone_moves_the_daily_buckets() -> None:
    in_cst = run(Retention(daily=7), tz=CST)
    in_utc = run(Retention(daily=7), tz=UTC)
    # in UTC the newest snapshot is 2026-11-21 15:30 and each earlier day ends at 23:30 UTC,
    # which is 07:30 the next morning in UTC+8
    assert kept(in_utc, UTC) == [
        "2026-11-21T15:30",
        "2026-11-20T23:30",
        "2026-11-19T23:30",
        "2026-11-18T23:30",
        "2026-11-17T23:30",
        "2026-11-16T23:30",
        "2026-11-15T23:30",
    ]
    assert kept(in_utc) == [
        "2026-11-21T23:30",
        "2026-11-21T07:30",
        "2026-11-20T07:30",
        "2026-11-19T07:30",
        "2026-11-18T07:30",
        "2026-11-17T07:30",
        "2026-11-16T07:30",
    ]
    assert set(kept(in_utc)) & set(kept(in_cst)) == {"2026-11-21T23:30"}
    assert why(in_utc)["2026-11-21T07:30"] == ("daily #2 (2026-11-20)",)
    assert why(in_cst)["2026-11-21T07:30"] == ("matches no rule",)


@pytest.mark.skipif(not hasattr(time, "tzset"), reason="needs time.tzset")
def test_no_tz_means_the_machines_local_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "XST-8")  # POSIX TZ string for UTC+8, no tzdata involved
    time.tzset()
    try:
        local = decide(Retention(daily=7), YEAR, NOW)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert local == run(Retention(daily=7), tz=CST)


def test_iso_week_across_the_year_boundary() -> None:
    items = tuple(
        Item(sid(n), at(text))
        for n, text in enumerate(
            ["2026-12-24T12:00", "2026-12-31T12:00", "2027-01-01T12:00", "2027-01-04T12:00"]
        )
    )
    weekly = decide(Retention(weekly=3), items, at("2027-01-05T00:00"), CST)
    assert {iso(d.item.time): d.reasons for d in weekly} == {
        "2027-01-04T12:00": ("weekly #1 (2027-W01)",),
        "2027-01-01T12:00": ("weekly #2 (2026-W53)",),  # one ISO week with 31 Dec
        "2026-12-31T12:00": ("matches no rule",),
        "2026-12-24T12:00": ("weekly #3 (2026-W52)",),
    }
    yearly = decide(Retention(yearly=3), items, at("2027-01-05T00:00"), CST)
    assert kept(yearly) == ["2027-01-04T12:00", "2026-12-31T12:00"]
    assert why(yearly)["2026-12-31T12:00"] == ("yearly #2 (2026)",)
    assert why(yearly)["2027-01-01T12:00"] == ("matches no rule",)


def test_daily_counts_days_that_have_snapshots_across_gaps() -> None:
    texts = [
        "2026-11-21T10:00",
        "2026-11-21T08:00",
        "2026-11-18T10:00",
        "2026-11-10T10:00",
        "2026-11-09T10:00",
        "2026-11-01T10:00",
        "2026-10-20T10:00",
        "2026-10-19T10:00",
        "2026-10-01T10:00",
    ]
    items = tuple(Item(sid(n), at(text)) for n, text in enumerate(texts))
    decisions = decide(Retention(daily=7), items, at("2026-11-22T00:00"), CST)
    assert kept(decisions) == [
        "2026-11-21T10:00",
        "2026-11-18T10:00",
        "2026-11-10T10:00",
        "2026-11-09T10:00",
        "2026-11-01T10:00",
        "2026-10-20T10:00",
        "2026-10-19T10:00",
    ]
    assert why(decisions)["2026-10-19T10:00"] == ("daily #7 (2026-10-19)",)
    assert why(decisions)["2026-11-21T08:00"] == ("matches no rule",)


def test_ties_are_ordered_by_id_and_unsorted_input_is_sorted() -> None:
    t = at("2026-11-21T10:00")
    a, b, c = Item(sid(1), t), Item(sid(2), t), Item(sid(3), t - HOUR)
    decisions = decide(Retention(last=1, daily=2), [c, b, a], t, CST)
    assert [d.item for d in decisions] == [a, b, c]
    assert [d.reasons for d in decisions] == [
        ("last #1", "daily #1 (2026-11-21)"),
        ("matches no rule",),
        ("matches no rule",),  # same day as a: daily 2 finds no second day
    ]
    shuffled = list(YEAR)
    random.Random(7).shuffle(shuffled)
    policy = Retention(daily=7, weekly=4, monthly=12)
    assert decide(policy, shuffled, NOW, CST) == run(policy)


def test_empty_input() -> None:
    assert decide(Retention(daily=7), [], NOW, CST) == []
    assert decide(Retention(), [], NOW, CST) == []


def test_empty_policy_keeps_everything() -> None:
    decisions = run(Retention())
    assert len(decisions) == 8760
    assert all(d.keep and d.reasons == ("no retention policy",) for d in decisions)


def test_count_zero_keeps_nothing_but_the_newest() -> None:
    decisions = run(Retention(last=0, daily=0, weekly=0))
    assert kept(decisions) == ["2026-11-21T23:30"]
    assert decisions[0].reasons == ("newest (never forgotten)",)
    assert decisions[1].reasons == ("matches no rule",)


def test_newest_is_never_forgotten_but_gets_no_extra_reason_when_kept() -> None:
    decisions = run(Retention(tags=("none-has-this",)))
    assert kept(decisions) == ["2026-11-21T23:30"]
    assert decisions[0].reasons == ("newest (never forgotten)",)
    assert run(Retention(last=1))[0].reasons == ("last #1",)


def test_future_snapshots_are_kept_and_consume_no_counts() -> None:
    now = at("2026-11-21T12:00")
    items = [
        Item(sid(1), now + 2 * HOUR),  # clock skew: beyond the 60 s grace
        Item(sid(2), now + 60),  # at the edge of the grace: the present
        Item(sid(3), now - HOUR),
        Item(sid(4), now - DAY),
        Item(sid(5), now - 2 * DAY),
    ]
    decisions = decide(Retention(last=1, daily=2), items, now, CST)
    assert [(iso(d.item.time), d.reasons) for d in decisions] == [
        ("2026-11-21T14:00", ("in the future (clock skew?)",)),
        ("2026-11-21T12:01", ("last #1", "daily #1 (2026-11-21)")),
        ("2026-11-21T11:00", ("matches no rule",)),
        ("2026-11-20T12:00", ("daily #2 (2026-11-20)",)),
        ("2026-11-19T12:00", ("matches no rule",)),
    ]


def test_future_snapshot_does_not_shield_the_newest_present_one() -> None:
    now = at("2026-11-21T12:00")
    items = [Item(sid(1), now + DAY), Item(sid(2), now - HOUR), Item(sid(3), now - DAY)]
    decisions = decide(Retention(daily=0), items, now, CST)
    assert [d.reasons for d in decisions] == [
        ("in the future (clock skew?)",),
        ("newest (never forgotten)",),
        ("matches no rule",),
    ]
    only_future = decide(Retention(daily=0), items[:1], now, CST)
    assert only_future[0].reasons == ("in the future (clock skew?)",)


def test_negative_counts_are_rejected() -> None:
    with pytest.raises(ValueError, match="daily -1"):
        decide(Retention(daily=-1), YEAR[:3], NOW, CST)


def test_is_empty() -> None:
    assert is_empty(Retention())
    assert not is_empty(Retention(daily=0))
    assert not is_empty(Retention(within=0.0))
    assert not is_empty(Retention(tags=("x",)))


@pytest.mark.parametrize(
    ("policy", "text"),
    [
        (Retention(), "keep everything"),
        (
            Retention(last=3, daily=7, weekly=4, within=30 * DAY, tags=("a", "b")),
            "last 3, daily 7, weekly 4, within 30d, tags [a, b]",
        ),
        (
            Retention(yearly=3, monthly=12, hourly=48),
            "hourly 48, monthly 12, yearly 3",
        ),
        (Retention(daily=0), "daily 0"),
        (Retention(within=36 * HOUR), "within 1d12h"),
        (Retention(tags=("monthly-close",)), "tags [monthly-close]"),
    ],
)
def test_describe(policy: Retention, text: str) -> None:
    assert describe(policy) == text
