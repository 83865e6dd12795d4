"""ChunkerParams validation and the mask table."""

from __future__ import annotations

import dataclasses

import pytest

from drvault.chunker import ChunkerParams
from drvault.chunker.params import MASKS, check_params, masks_for


def test_for_average() -> None:
    params = ChunkerParams.for_average(65536)
    assert params == ChunkerParams(16384, 65536, 262144, 1)
    assert ChunkerParams.for_average(1 << 20, level=2).as_args() == (1 << 18, 1 << 20, 1 << 22, 2)


def test_params_are_frozen() -> None:
    params = ChunkerParams.for_average(4096)
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.avg_size = 8192  # type: ignore[misc]


@pytest.mark.parametrize(
    ("min_size", "avg_size", "max_size", "level", "message"),
    [
        (4096, 16384, 65536, -1, "level"),
        (4096, 16384, 65536, 4, "level"),
        (4096, 16000, 65536, 1, "avg_size"),
        (64, 128, 65536, 1, "avg_size"),
        (4096, 8 << 20, 16 << 20, 1, "avg_size"),
        (62, 16384, 65536, 1, "min_size"),
        (4097, 16384, 65536, 1, "min_size"),
        (16384, 16384, 65536, 1, "min_size"),
        (4096, 16384, 16384, 1, "max_size"),
        (4096, 16384, (16 << 20) + 2, 1, "max_size"),
    ],
)
def test_invalid_params(
    min_size: int, avg_size: int, max_size: int, level: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ChunkerParams(min_size, avg_size, max_size, level)
    with pytest.raises(ValueError, match=message):
        check_params(min_size, avg_size, max_size, level)


def test_params_reject_non_int() -> None:
    with pytest.raises(TypeError):
        ChunkerParams(4096, 16384.0, 65536)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ChunkerParams(4096, 16384, 65536, True)


def test_extreme_valid_params() -> None:
    ChunkerParams(64, 256, 258, 3)
    ChunkerParams.for_average(4 << 20, level=3)


def test_masks_follow_reference_indexing() -> None:
    # As the fastcdc crate's test_masks: avg 256 -> MASKS[7]/[9] etc. at level 1.
    assert masks_for(256, 1) == (MASKS[9], MASKS[7])
    assert masks_for(16384, 1) == (MASKS[15], MASKS[13])
    assert masks_for(4 << 20, 1) == (MASKS[23], MASKS[21])
    assert masks_for(16384, 0) == (MASKS[14], MASKS[14])
    assert ChunkerParams.for_average(16384, 3).masks == (MASKS[17], MASKS[11])


def test_mask_bits_match_their_index() -> None:
    for bits in range(5, 26):
        assert MASKS[bits].bit_count() == bits
    assert all(mask >> 48 == 0 for mask in MASKS)  # no bit that could wrap
