"""The tiering plan, ladder checks, lifecycle export and thaw latencies."""

from __future__ import annotations

from typing import Any

import pytest

from drvault.policy.model import Storage, TierStep
from drvault.policy.tiering import (
    COLDNESS,
    MIN_DAYS,
    Move,
    ladder_problems,
    lifecycle_rules,
    plan_moves,
    thaw_seconds,
)
from drvault.transport.base import ObjectInfo

DAY = 86400.0
HOUR = 3600.0
NOW = 1_800_000_000.0
LADDER = Storage(ladder=(TierStep(7 * DAY, "GLACIER"), TierStep(180 * DAY, "DEEP_ARCHIVE")))


def pack(name: str, age: float | None, cls: str | None = None, size: int = 100) -> ObjectInfo:
    return ObjectInfo(f"data/{name}", size, cls, None if age is None else NOW - age)


def classes_after(storage: Storage, *packs: ObjectInfo) -> dict[str, str]:
    plan = plan_moves(storage, packs, NOW)
    moved = {m.name: m.to_class for m in plan.moves}
    return {p.name[5:]: moved.get(p.name, p.storage_class or "STANDARD") for p in packs}


def test_coldness_and_minimum_durations() -> None:
    assert COLDNESS["STANDARD"] < COLDNESS["STANDARD_IA"] == COLDNESS["ONEZONE_IA"]
    assert COLDNESS["ONEZONE_IA"] == COLDNESS["INTELLIGENT_TIERING"] < COLDNESS["GLACIER_IR"]
    assert COLDNESS["GLACIER_IR"] < COLDNESS["GLACIER"] < COLDNESS["DEEP_ARCHIVE"]
    assert MIN_DAYS == {
        "STANDARD_IA": 30,
        "ONEZONE_IA": 30,
        "GLACIER_IR": 90,
        "GLACIER": 90,
        "DEEP_ARCHIVE": 180,
    }


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (0.0, "STANDARD"),
        (7 * DAY - 1, "STANDARD"),
        (7 * DAY, "GLACIER"),  # exactly at ``after`` moves
        (7 * DAY + 1, "GLACIER"),
        (180 * DAY - 1, "GLACIER"),
        (180 * DAY, "DEEP_ARCHIVE"),
        (3650 * DAY, "DEEP_ARCHIVE"),
        (-HOUR, "STANDARD"),  # from the future: younger than every rung
    ],
)
def test_target_class_around_each_rung(age: float, expected: str) -> None:
    assert classes_after(LADDER, pack("p", age)) == {"p": expected}


def test_a_move_names_its_rung_and_age() -> None:
    plan = plan_moves(LADDER, [pack("a", 41 * DAY, size=7)], NOW)
    reason = "41d old: after 7d -> GLACIER"
    assert plan.moves == (Move("data/a", 7, 41 * DAY, "STANDARD", "GLACIER", reason),)
    assert plan.stay == 0


def test_a_pack_already_at_its_rung_stays() -> None:
    plan = plan_moves(LADDER, [pack("a", 41 * DAY, "GLACIER")], NOW)
    assert plan.moves == () and plan.stay == 1


def test_a_moved_pack_is_aged_from_its_landing_not_its_move() -> None:
    # Moved to GLACIER (at 7 days) 172.5 days ago: landed 179.5 days ago, not yet due.
    young = pack("young", 172.5 * DAY, "GLACIER")
    # Moved 173 days ago: landed at least 180 days ago, so DEEP_ARCHIVE is due.
    due = pack("due", 173 * DAY, "GLACIER")
    assert classes_after(LADDER, young, due) == {"young": "GLACIER", "due": "DEEP_ARCHIVE"}


def test_an_old_pack_skips_rungs_straight_to_the_coldest_due() -> None:
    plan = plan_moves(LADDER, [pack("a", 400 * DAY)], NOW)
    assert [(m.from_class, m.to_class) for m in plan.moves] == [("STANDARD", "DEEP_ARCHIVE")]


def test_never_warmer_never_sideways() -> None:
    glacier_only = Storage(ladder=(TierStep(7 * DAY, "GLACIER"),))
    ia = Storage(ladder=(TierStep(30 * DAY, "STANDARD_IA"),))
    assert classes_after(glacier_only, pack("deep", 400 * DAY, "DEEP_ARCHIVE")) == {
        "deep": "DEEP_ARCHIVE"
    }
    assert classes_after(ia, pack("it", 60 * DAY, "INTELLIGENT_TIERING")) == {
        "it": "INTELLIGENT_TIERING"  # same coldness: sideways is not a move
    }
    assert classes_after(ia, pack("oz", 60 * DAY, "ONEZONE_IA")) == {"oz": "ONEZONE_IA"}
    assert classes_after(ia, pack("ir", 60 * DAY, "GLACIER_IR")) == {"ir": "GLACIER_IR"}


def test_a_class_drvault_does_not_rank_is_left_alone() -> None:
    plan = plan_moves(LADDER, [pack("rr", 400 * DAY, "REDUCED_REDUNDANCY")], NOW)
    assert plan.moves == () and plan.stay == 1
    assert plan.bytes_by_class == {"REDUCED_REDUNDANCY": 100}


def test_unknown_mtime_stays_and_is_counted() -> None:
    plan = plan_moves(LADDER, [pack("a", None), pack("b", None, "GLACIER"), pack("c", 1.0)], NOW)
    assert plan.moves == ()
    assert (plan.unknown_age, plan.stay) == (2, 1)


def test_missing_class_counts_as_standard() -> None:
    plan = plan_moves(LADDER, [pack("a", 8 * DAY, None)], NOW)
    assert plan.moves[0].from_class == "STANDARD"


def test_empty_ladder_moves_nothing() -> None:
    plan = plan_moves(Storage(), [pack("a", 400 * DAY)], NOW)
    assert (plan.moves, plan.stay, plan.bytes_by_class) == ((), 1, {"STANDARD": 100})


def test_bytes_by_class_after_the_plan() -> None:
    packs = [
        pack("new", HOUR, size=1),
        pack("week", 8 * DAY, size=10),
        pack("old", 200 * DAY, size=100),
        pack("old-glacier", 200 * DAY, "GLACIER", size=1000),
        pack("deep", 10 * DAY, "DEEP_ARCHIVE", size=10_000),
        pack("nomtime", None, size=100_000),
    ]
    plan = plan_moves(LADDER, packs, NOW)
    assert plan.bytes_by_class == {
        "STANDARD": 100_001,
        "GLACIER": 10,
        "DEEP_ARCHIVE": 11_100,
    }
    assert [m.name for m in plan.moves] == ["data/week", "data/old", "data/old-glacier"]
    assert len(plan.moves) + plan.stay + plan.unknown_age == len(packs)
    assert (plan.stay, plan.unknown_age) == (2, 1)


def test_a_good_ladder_has_no_problems() -> None:
    good = Storage(
        data_class="STANDARD",
        metadata_class="STANDARD_IA",
        ladder=(
            TierStep(30 * DAY, "STANDARD_IA"),
            TierStep(60 * DAY, "GLACIER_IR"),
            TierStep(150 * DAY, "GLACIER"),
            TierStep(240 * DAY, "DEEP_ARCHIVE"),
        ),
    )
    assert ladder_problems(good) == []
    assert ladder_problems(Storage()) == []


def test_minimum_duration_warning() -> None:
    storage = Storage(ladder=(TierStep(7 * DAY, "GLACIER"), TierStep(30 * DAY, "DEEP_ARCHIVE")))
    assert ladder_problems(storage) == [
        "warning: GLACIER after 7d then DEEP_ARCHIVE after 30d: GLACIER is billed for at least 90d"
    ]


def test_minimum_duration_of_the_landing_class() -> None:
    storage = Storage(data_class="STANDARD_IA", ladder=(TierStep(7 * DAY, "GLACIER"),))
    assert ladder_problems(storage) == [
        "warning: STANDARD_IA (landing class) then GLACIER after 7d: "
        "STANDARD_IA is billed for at least 30d"
    ]


def test_rungs_must_ascend_in_age() -> None:
    storage = Storage(ladder=(TierStep(90 * DAY, "GLACIER"), TierStep(90 * DAY, "DEEP_ARCHIVE")))
    problems = ladder_problems(storage)
    assert any(p.startswith("error: ") and "ascend in age" in p for p in problems)


def test_rungs_must_ascend_in_coldness() -> None:
    warmer = Storage(ladder=(TierStep(7 * DAY, "GLACIER"), TierStep(200 * DAY, "GLACIER_IR")))
    sideways = Storage(ladder=(TierStep(30 * DAY, "STANDARD_IA"), TierStep(60 * DAY, "ONEZONE_IA")))
    (problem,) = ladder_problems(warmer)
    assert problem.startswith("error: ") and "GLACIER_IR is not colder than GLACIER" in problem
    assert any("ONEZONE_IA is not colder" in p for p in ladder_problems(sideways))


def test_first_rung_must_be_colder_than_the_landing_class() -> None:
    storage = Storage(data_class="GLACIER", ladder=(TierStep(200 * DAY, "GLACIER_IR"),))
    (problem,) = ladder_problems(storage)
    assert problem.startswith("error: GLACIER (landing class) then GLACIER_IR after 200d")


def test_metadata_never_archived() -> None:
    for cls in ("GLACIER", "DEEP_ARCHIVE"):
        (problem,) = ladder_problems(Storage(metadata_class=cls))
        assert problem.startswith(f"error: metadata_class {cls} is an archive class")
    assert ladder_problems(Storage(metadata_class="GLACIER_IR")) == []


def test_early_ia_rung_and_expedited_deep_archive_are_warnings() -> None:
    storage = Storage(
        ladder=(TierStep(7 * DAY, "STANDARD_IA"), TierStep(400 * DAY, "DEEP_ARCHIVE")),
        thaw_tier="Expedited",
    )
    problems = ladder_problems(storage)
    assert len(problems) == 2 and all(p.startswith("warning: ") for p in problems)
    assert "cannot move to STANDARD_IA before 30d" in problems[0]
    assert "Expedited is not offered for DEEP_ARCHIVE" in problems[1]


def test_unknown_class_and_negative_age_are_errors() -> None:
    problems = ladder_problems(Storage(ladder=(TierStep(-1.0, "COLD_CELLAR"),)))
    assert len(problems) == 2 and all(p.startswith("error: ") for p in problems)


def test_lifecycle_rules_for_two_prefixes() -> None:
    storage = Storage(ladder=(TierStep(7 * DAY, "GLACIER"), TierStep(180.5 * DAY, "DEEP_ARCHIVE")))
    transitions = [
        {"Days": 7, "StorageClass": "GLACIER"},
        {"Days": 181, "StorageClass": "DEEP_ARCHIVE"},  # rounded up to whole days
    ]
    assert lifecycle_rules(storage, ["dr/core-ledger/", "payroll/"]) == {
        "Rules": [
            {
                "ID": "drvault-dr-core-ledger",
                "Status": "Enabled",
                "Filter": {"Prefix": "dr/core-ledger/data/"},
                "Transitions": transitions,
            },
            {
                "ID": "drvault-payroll",
                "Status": "Enabled",
                "Filter": {"Prefix": "payroll/data/"},
                "Transitions": transitions,
            },
        ]
    }


def test_lifecycle_zero_days_allowed_for_archive_classes() -> None:
    rules = lifecycle_rules(Storage(ladder=(TierStep(0.0, "DEEP_ARCHIVE"),)), ["x/"])
    assert rules["Rules"] == [
        {
            "ID": "drvault-x",
            "Status": "Enabled",
            "Filter": {"Prefix": "x/data/"},
            "Transitions": [{"Days": 0, "StorageClass": "DEEP_ARCHIVE"}],
        }
    ]


@pytest.mark.parametrize("cls", ["STANDARD_IA", "ONEZONE_IA"])
def test_lifecycle_ia_needs_thirty_days(cls: str) -> None:
    with pytest.raises(ValueError, match=f"at least 30 days before a transition to {cls}"):
        lifecycle_rules(Storage(ladder=(TierStep(29 * DAY, cls),)), ["x/"])
    rules: Any = lifecycle_rules(Storage(ladder=(TierStep(29.01 * DAY, cls),)), ["x/"])
    assert rules["Rules"][0]["Transitions"] == [{"Days": 30, "StorageClass": cls}]


def test_lifecycle_thirty_days_in_ia_before_the_next_transition() -> None:
    storage = Storage(ladder=(TierStep(30 * DAY, "STANDARD_IA"), TierStep(45 * DAY, "GLACIER")))
    with pytest.raises(ValueError, match="at least 30 days in STANDARD_IA"):
        lifecycle_rules(storage, ["x/"])


def test_lifecycle_rejects_disorder_and_bad_prefixes() -> None:
    same_day = Storage(ladder=(TierStep(HOUR, "GLACIER"), TierStep(2 * HOUR, "DEEP_ARCHIVE")))
    with pytest.raises(ValueError, match="ascend"):
        lifecycle_rules(same_day, ["x/"])
    with pytest.raises(ValueError, match="must end with '/'"):
        lifecycle_rules(LADDER, ["x"])
    with pytest.raises(ValueError, match="both give ID drvault-a-b"):
        lifecycle_rules(LADDER, ["a/b/", "a-b/"])
    assert lifecycle_rules(Storage(), ["x/"]) == {"Rules": []}


@pytest.mark.parametrize(
    ("cls", "tier", "seconds"),
    [
        ("GLACIER", "Expedited", 5 * 60),
        ("GLACIER", "Standard", 5 * HOUR),
        ("GLACIER", "Bulk", 12 * HOUR),
        ("DEEP_ARCHIVE", "Expedited", 12 * HOUR),  # not offered: Standard
        ("DEEP_ARCHIVE", "Standard", 12 * HOUR),
        ("DEEP_ARCHIVE", "Bulk", 48 * HOUR),
        ("GLACIER_IR", "Expedited", 0),
        ("STANDARD", "Bulk", 0),
        ("STANDARD_IA", "Standard", 0),
    ],
)
def test_thaw_seconds(cls: str, tier: str, seconds: float) -> None:
    assert thaw_seconds(cls, tier) == seconds


def test_thaw_seconds_unknown_tier() -> None:
    with pytest.raises(ValueError, match="unknown thaw tier"):
        thaw_seconds("GLACIER", "Instant")
