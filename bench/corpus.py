"""Deterministic benchmark corpora, generated, never committed.

Everything derives from a seed, so two runs (or a test and a benchmark) see the same bytes.

Three data sets stand for what issue 3 backs up each night, each as a day-1 tree plus the
change set that turns it into day 2 (applied in place to a live copy, so the tools' incremental
logic sees a real "next day": unchanged files keep their inode, size and times):

- ``dump``: a PostgreSQL-style ``--inserts`` dump of a bank (accounts, transactions), which
  zstd-3 shrinks about 4x. Day 2: 1% of rows changed in place (same id and account; the
  values redrawn, so the row's *length usually changes*), 0.5% new rows inserted at random
  positions, both in runs of 16 neighbouring rows (``DumpEdit``), and 1% appended at the end
  of the transactions table. The file is rewritten whole. (With CDC, about 99% of day 2 lands
  in new chunks at 1 MiB average chunks, 37% at 64 KiB, 14% at 16 KiB.)
- ``docs``: a document store, log-normal file sizes between 1 KiB and 1 MiB in a few hundred
  directories; text, CSV, XML and JSON (compressible) and random bytes behind PDF, JPEG and ZIP
  magic numbers (standing for scans and archives). Day 2: 3% of files modified, 2% added,
  1% deleted.
- ``image``: a sparse VM disk image: long holes, filesystem metadata-like blocks, text, binary
  (low-entropy) and incompressible extents. Day 2: 1% of its 4 KiB blocks rewritten in place.

Layout of a generated data set under ``root``: ``day1/`` (the tree), ``day2/replace/`` (files
that are new or rewritten on day 2), ``day2/delete.txt`` (one relative path a line),
``day2/patch/<path>.offsets.npy`` + ``.blocks`` (4 KiB blocks written in place), and
``manifest.json`` (seed, scale, generator version, statistics), written last.

One module on purpose (hence its length): the generators share the vocabulary, the change-set
layout and the manifest.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

GENERATOR_VERSION = 2
BLOCK = 4096
DATASETS = ("dump", "docs", "image")
_GIB, _MIB, _KIB = 1 << 30, 1 << 20, 1 << 10

# ------------------------------------------------------------------------- printable text
# (used by bench.edit_growth and tests/test_edit_growth.py)

# Printable text: letters weighted toward lower case, digits, spaces, punctuation, newlines.
_ALPHABET = np.frombuffer(
    b"etaoinshrdlucmfwypvbgkqjxz" * 3 + b"ETAOINSHRDLU" + b"0123456789" * 2 + b"      ,.;()'\n",
    dtype=np.uint8,
)


def random_text(size: int, rng: np.random.Generator) -> bytes:
    """``size`` bytes of printable pseudo-text (compresses like prose, dedups not at all)."""
    return _ALPHABET[rng.integers(0, len(_ALPHABET), size, dtype=np.uint32)].tobytes()


def write_text_file(path: str | os.PathLike[str], size: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    block = 16 << 20
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(block, left)
            f.write(random_text(n, rng))
            left -= n


def edit_text_file(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    seed: int = 2,
    changed: float = 0.01,
    inserted: float = 0.005,
    edits: int = 50,
    inserts: int = 50,
) -> dict[str, int]:
    """The next day's version of ``src``: ``changed`` of it rewritten in place as ``edits``
    contiguous edits and ``inserted`` of it added at ``inserts`` random positions."""
    data = bytearray(Path(src).read_bytes())
    size = len(data)
    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    edit_len = int(size * changed) // edits
    for _ in range(edits):
        at = pick.randrange(0, size - edit_len)
        data[at : at + edit_len] = random_text(edit_len, rng)
    insert_len = int(size * inserted) // inserts
    positions = sorted(pick.randrange(0, size) for _ in range(inserts))
    out = bytearray()
    last = 0
    for at in positions:
        out += data[last:at]
        out += random_text(insert_len, rng)
        last = at
    out += data[last:]
    with open(dst, "wb") as f:
        f.write(out)
    return {"size": size, "changed_bytes": edit_len * edits, "inserted_bytes": insert_len * inserts}


def dir_size(path: str | os.PathLike[str]) -> int:
    """Apparent size in bytes of the regular files below ``path``."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(root, name)).st_size
    return total


def rng_for(seed: int, *keys: int) -> np.random.Generator:
    """An independent generator for one piece of a data set (a block, a file, a day)."""
    return np.random.default_rng([seed, *keys])


# ------------------------------------------------------------------------ word-like text

_SYLLABLES = [c + v for c in "bcdfghjklmnprstwxyz" for v in ("a", "e", "i", "o", "u", "ai", "an")]


class Vocabulary:
    """Zipf-distributed pseudo-words with punctuation; ``text()`` is vectorised (a gather)."""

    def __init__(self, words: int = 4000, seed: int = 0) -> None:
        pick = random.Random(seed)
        tokens = sorted(
            {
                "".join(pick.choices(_SYLLABLES, k=pick.choice((1, 2, 2, 3, 3, 4))))
                for _ in range(words)
            }
        )
        pick.shuffle(tokens)  # rank order (frequency) independent of spelling
        encoded = [t.encode() + b" " for t in tokens]
        encoded[5:5] = [b", ", b". ", b".\n", b"\n\n"]  # frequent "words"
        self.words = [w.strip() for w in encoded if w.strip(b" ,.\n")]
        self._buf = np.frombuffer(b"".join(encoded), np.uint8)
        self._lens = np.array([len(w) for w in encoded], np.int64)
        self._starts = np.cumsum(self._lens) - self._lens
        weights = 1.0 / (np.arange(len(encoded)) + 2.7)
        weights /= weights.sum()
        # inverse CDF on a 16-bit grid: one table lookup per word instead of a binary search
        grid = (np.arange(1 << 16) + 0.5) / (1 << 16)
        pick_idx = np.searchsorted(np.cumsum(weights), grid)
        self._pick = np.minimum(pick_idx, len(encoded) - 1).astype(np.int32)
        self._mean = float(self._lens[self._pick].mean())

    def text(self, size: int, rng: np.random.Generator) -> bytes:
        """``size`` bytes of word-like text (zstd-3 shrinks it about 2.5x)."""
        parts, have = [], 0
        while have < size:
            n = int(min(size - have, 4 * _MIB) / self._mean * 1.05) + 8
            idx = self._pick[rng.integers(0, 1 << 16, n, dtype=np.uint16)]
            lens = self._lens[idx]
            out_starts = np.cumsum(lens) - lens
            pos = np.repeat(self._starts[idx] - out_starts, lens) + np.arange(int(lens.sum()))
            parts.append(self._buf[pos].tobytes())
            have += len(parts[-1])
        return b"".join(parts)[:size]

    def phrases(
        self, count: int, rng: np.random.Generator, words: tuple[int, int] = (2, 7)
    ) -> list[str]:
        out = []
        for n in rng.integers(words[0], words[1] + 1, count).tolist():
            idx = rng.integers(0, min(len(self.words), 1500), n).tolist()
            out.append(" ".join(self.words[i].decode() for i in idx))
        return out


VOCAB = Vocabulary()

# ------------------------------------------------------------------------------ change sets


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def stage_day1(root: Path, live: Path) -> None:
    """Copy the day-1 tree into ``live`` (created), keeping holes and times."""
    live.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", "--sparse=always", f"{root / 'day1'}/.", str(live)], check=True)


def apply_day2(root: Path, live: Path) -> dict[str, int]:
    """Turn a live day-1 copy into day 2 in place: delete, replace (write + rename), patch."""
    day2 = root / "day2"
    stats = {"deleted": 0, "replaced": 0, "patched_blocks": 0}
    for rel in (day2 / "delete.txt").read_text().splitlines():
        if rel:
            (live / rel).unlink()
            stats["deleted"] += 1
    replace = day2 / "replace"
    for src in sorted(p for p in replace.rglob("*") if p.is_file()):
        dst = live / src.relative_to(replace)
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.day2")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
        stats["replaced"] += 1
    patch = day2 / "patch"
    for offsets_file in sorted(patch.rglob("*.offsets.npy")):
        rel = offsets_file.relative_to(patch).as_posix().removesuffix(".offsets.npy")
        offsets = np.load(offsets_file)
        with open(offsets_file.with_name(Path(rel).name + ".blocks"), "rb") as blocks:
            fd = os.open(live / rel, os.O_WRONLY)
            try:
                for off in offsets.tolist():
                    os.pwrite(fd, blocks.read(BLOCK), off)
            finally:
                os.close(fd)
        stats["patched_blocks"] += len(offsets)
    return stats


# ------------------------------------------------------------------------------ SQL dump

_SURNAMES = (
    "Wang",
    "Li",
    "Zhang",
    "Liu",
    "Chen",
    "Yang",
    "Huang",
    "Zhao",
    "Wu",
    "Zhou",
    "Xu",
    "Sun",
    "Ma",
    "Zhu",
    "Hu",
    "Guo",
    "He",
    "Lin",
    "Gao",
    "Luo",
    "Zheng",
    "Liang",
    "Xie",
    "Song",
    "Tang",
    "Han",
    "Feng",
    "Deng",
    "Cao",
    "Peng",
    "Zeng",
    "Xiao",
    "Tian",
    "Dong",
    "Pan",
    "Yuan",
    "Cai",
    "Jiang",
    "Yu",
    "Du",
)
_CITIES = (
    "Beijing",
    "Shanghai",
    "Guangzhou",
    "Shenzhen",
    "Changsha",
    "Chenzhou",
    "Zixing",
    "Shaoguan",
    "Guiyang",
    "Wuhan",
    "Chengdu",
    "Hangzhou",
    "Nanjing",
    "Tianjin",
    "Xian",
    "Chongqing",
    "Kunming",
    "Fuzhou",
    "Xiamen",
    "Jinan",
    "Qingdao",
    "Zhengzhou",
)
_TX_TYPES = ("DEBIT", "CREDIT", "TRANSFER", "FEE", "INTEREST", "REVERSAL")
_CHANNELS = ("POS", "ATM", "MOBILE", "ONLINE", "BRANCH", "SWIFT", "CNAPS", "UNIONPAY")
_MEMOS = (
    "POS purchase",
    "Online payment",
    "Salary",
    "Transfer to",
    "Transfer from",
    "ATM withdrawal",
    "Utility bill",
    "Loan repayment",
    "Card repayment",
    "Insurance premium",
    "Tax payment",
    "Refund",
    "Interest credit",
    "Service fee",
    "Mortgage instalment",
    "Tuition",
)
_STATUS = ("ACTIVE", "ACTIVE", "ACTIVE", "ACTIVE", "DORMANT", "FROZEN", "CLOSED")
_TX_SQL = (
    "INSERT INTO public.transactions VALUES (%d, '%s', '%s', '%s', %d.%02d, 'CNY', %d.%02d, "
    "'%s', '%s', '%019d', '%s %s', 'T%s%010d');\n"
)
_ACC_SQL = (
    "INSERT INTO public.accounts VALUES (%d, '6222%015d', '%s', '%06d%s%04d', 'BR%05d', "
    "'%s', '%s', %d.%02d, 'CNY', '%s');\n"
)
_DUMP_HEAD = """--
-- PostgreSQL database dump
--

SET statement_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;

CREATE TABLE public.accounts (
    account_id bigint NOT NULL, account_no character varying(19) NOT NULL,
    customer_name text NOT NULL, id_number character(18) NOT NULL, branch character(7),
    opened_on date, status text, balance numeric(18,2), currency character(3),
    updated_at timestamp without time zone
);

CREATE TABLE public.transactions (
    txn_id bigint NOT NULL, account_no character varying(19) NOT NULL,
    txn_time timestamp without time zone NOT NULL, txn_type text, amount numeric(18,2),
    currency character(3), balance_after numeric(18,2), channel text, counterparty text,
    counterparty_account character varying(19), memo text, reference character(20)
);

--
-- Data for Name: accounts; Type: TABLE DATA; Schema: public
--

"""
_DUMP_MID = "\n--\n-- Data for Name: transactions; Type: TABLE DATA; Schema: public\n--\n\n"
_DUMP_TAIL = """
ALTER TABLE ONLY public.accounts ADD CONSTRAINT accounts_pkey PRIMARY KEY (account_id);
ALTER TABLE ONLY public.transactions ADD CONSTRAINT transactions_pkey PRIMARY KEY (txn_id);
CREATE INDEX transactions_account_idx ON public.transactions USING btree (account_no, txn_time);

--
-- PostgreSQL database dump complete
--
"""
_ROWS_PER_BLOCK = 32768
_NEW_IDS = 9 * 10**9  # ids of rows inserted on day 2 (appended rows continue the sequence)


@dataclass(frozen=True)
class DumpEdit:
    """What a day does to the dump, as fractions of its rows. Changes and inserts come in runs
    of ``run_rows`` neighbouring rows (a batch job touches a range); with ``run_rows=1`` every
    changed row is on its own and nearly every 64 KiB of the dump changes."""

    changed: float = 0.01
    inserted: float = 0.005
    appended: float = 0.01
    run_rows: int = 16


_T0 = int(np.datetime64("2022-01-01T00:00:00", "s").astype(np.int64))


class _Bank:
    """Row factories for one dump; field tables are built once per seed."""

    def __init__(self, seed: int, accounts: int) -> None:
        rng = rng_for(seed, 10)
        self.accounts = accounts
        given = [a.capitalize() + b for a in _SYLLABLES[:60] for b in _SYLLABLES[60:90]]
        self.names = [f"{s} {g}" for s in _SURNAMES for g in given]
        self.account_no = [f"6222{(i * 7919 + 104729) % 10**15:015d}" for i in range(accounts)]
        self.merchants = [
            f"{c} {p}"
            for c, p in zip(
                rng.choice(_CITIES, 3000).tolist(),
                VOCAB.phrases(3000, rng, (1, 3)),
                strict=True,
            )
        ]

    def _name(self, rng: np.random.Generator, n: int) -> list[str]:
        return [self.names[i] for i in rng.integers(0, len(self.names), n).tolist()]

    def tx_rows(
        self, rng: np.random.Generator, ids: np.ndarray, secs: np.ndarray, accts: np.ndarray
    ) -> list[str]:
        n = len(ids)
        amount = np.divmod(rng.lognormal(8.5, 1.7, n).astype(np.int64) + 1, 100)
        balance = np.divmod(rng.integers(0, 5 * 10**8, n), 100)
        stamp = np.datetime_as_string(secs.astype("datetime64[s]"))
        day = [s[:10].replace("-", "") for s in stamp.tolist()]
        cols = (
            ids.tolist(),
            [self.account_no[i] for i in accts.tolist()],
            [s.replace("T", " ") for s in stamp.tolist()],
            [_TX_TYPES[i] for i in rng.choice(6, n, p=[0.5, 0.3, 0.12, 0.04, 0.03, 0.01]).tolist()],
            amount[0].tolist(),
            amount[1].tolist(),
            balance[0].tolist(),
            balance[1].tolist(),
            [_CHANNELS[i] for i in rng.integers(0, len(_CHANNELS), n).tolist()],
            self._name(rng, n),
            rng.integers(6 * 10**18, 7 * 10**18, n).tolist(),
            [_MEMOS[i] for i in rng.integers(0, len(_MEMOS), n).tolist()],
            [self.merchants[i] for i in rng.integers(0, len(self.merchants), n).tolist()],
            day,
            rng.integers(0, 10**10, n).tolist(),
        )
        return [_TX_SQL % r for r in zip(*cols, strict=True)]

    def acc_rows(
        self, rng: np.random.Generator, ids: np.ndarray, secs: np.ndarray, accts: np.ndarray
    ) -> list[str]:
        """Account rows: who holds account ``accts[i]`` (name, ID number, branch, opening date)
        follows from the account; status, balance and update time are drawn from ``rng``."""
        n = len(ids)
        h = (accts.astype(np.uint64) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
        h ^= h >> np.uint64(29)
        h = h.astype(np.int64) & np.int64((1 << 62) - 1)
        birth = np.datetime_as_string((h % 21000 - 9000).astype("datetime64[D]"))
        opened = np.datetime_as_string((_T0 // 86400 - (h >> 15) % 5000).astype("datetime64[D]"))
        updated = np.datetime_as_string(secs.astype("datetime64[s]"))
        balance = np.divmod(rng.lognormal(11, 2, n).astype(np.int64), 100)
        cols = (
            ids.tolist(),
            ((accts * 7919 + 104729) % 10**15).tolist(),
            [self.names[i] for i in ((h >> 20) % len(self.names)).tolist()],
            (110000 + (h >> 24) % 550000).tolist(),
            [b.replace("-", "") for b in birth.tolist()],
            ((h >> 44) % 10000).tolist(),
            ((h >> 30) % 3000).tolist(),
            opened.tolist(),
            [_STATUS[i] for i in rng.integers(0, len(_STATUS), n).tolist()],
            balance[0].tolist(),
            balance[1].tolist(),
            [u.replace("T", " ") for u in updated.tolist()],
        )
        return [_ACC_SQL % r for r in zip(*cols, strict=True)]


def _runs(n: int, count: int, run: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """``count`` of ``n`` rows as (start, length) runs of ``run`` rows (the last one shorter)
    in random, non-overlapping, ascending places."""
    if count <= 0:
        return []
    if n // run < -(-count // run):
        run = 1
    k = -(-count // run)
    slots = np.sort(rng.choice(n // run, k, replace=False)).tolist()
    lengths = [run] * (k - 1) + [count - run * (k - 1)]
    return [(s * run, length) for s, length in zip(slots, lengths, strict=True)]


def _next_day(
    bank: _Bank,
    table: int,
    rows: list[str],
    block: tuple[np.ndarray, np.ndarray, np.ndarray],
    rng: np.random.Generator,
    first_new_id: int,
    edit: DumpEdit,
) -> tuple[list[str], int, int]:
    """Day 2 of one block of rows: ``edit.changed`` of them remade in place (same id, account
    and time, other fields redrawn), ``edit.inserted`` new rows (new ids) put in at random
    places; both in runs of ``edit.run_rows`` neighbouring rows."""
    ids, secs, accts = block
    n = len(rows)
    make = bank.acc_rows if table == 0 else bank.tx_rows
    changed = _runs(n, round(n * edit.changed), edit.run_rows, rng)
    pick = np.array([i for s, length in changed for i in range(s, s + length)], np.int64)
    out = list(rows)
    for i, row in zip(pick.tolist(), make(rng, ids[pick], secs[pick], accts[pick]), strict=True):
        out[i] = row
    k = round(n * edit.inserted)
    new = make(
        rng,
        np.arange(first_new_id, first_new_id + k),
        secs[rng.integers(0, n, k)],
        # new accounts for the accounts table, existing ones for transactions
        np.arange(k) + first_new_id - _NEW_IDS + bank.accounts
        if table == 0
        else rng.integers(0, bank.accounts, k),
    )
    # insertion points: as many as runs, anywhere between two rows (0..n)
    runs = _runs(max(n, k), k, edit.run_rows, rng)
    at = np.sort(rng.integers(0, n + 1, len(runs))).tolist()
    merged: list[str] = []
    last = used = 0
    for pos, (_start, length) in zip(at, runs, strict=True):
        merged.extend(out[last:pos])
        merged.extend(new[used : used + length])
        last, used = pos, used + length
    merged.extend(out[last:])
    return merged, len(pick), k


def _dump_block(
    bank: _Bank, table: int, seed: int, block: int, start: int, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ids, timestamps and account indexes of rows ``start:start+n`` of a table."""
    rng = rng_for(seed, 11, table, block)
    idx = np.arange(start, start + n)
    if table == 0:
        return idx + 1, _T0 + rng.integers(0, 700 * 86400, n), idx
    return idx + 10**8, _T0 + idx * 11 + rng.integers(0, 11, n), rng.integers(0, bank.accounts, n)


def generate_dump(
    root: Path,
    scale: float,
    seed: int,
    *,
    edit: DumpEdit = DumpEdit(),
) -> dict[str, Any]:
    """``bank.sql`` of about ``512 MiB * scale`` and its day-2 rewrite (see the module doc).

    Streams blocks of rows; each block is written to day 1, edited and written to day 2, so
    memory stays bounded and any block can be regenerated alone from the seed."""
    target = int(512 * _MIB * scale)
    bank = _Bank(seed, max(1000, int(200_000 * scale)))
    (root / "day1").mkdir(parents=True)
    (root / "day2" / "replace").mkdir(parents=True)
    (root / "day2" / "delete.txt").write_text("")
    stats = {"rows": 0, "changed": 0, "inserted": 0, "appended": 0}
    new_id = _NEW_IDS
    with (
        open(root / "day1" / "bank.sql", "wb") as d1,
        open(root / "day2" / "replace" / "bank.sql", "wb") as d2,
    ):
        for f in (d1, d2):
            f.write(_DUMP_HEAD.encode())
        # the accounts table, then transactions until the file reaches its target size
        for table in (0, 1):
            if table == 1:
                for f in (d1, d2):
                    f.write(_DUMP_MID.encode())
            block = start = 0
            table_start = d1.tell()
            while True:
                if table == 0:
                    n = min(_ROWS_PER_BLOCK, bank.accounts - start)
                else:
                    left = target - len(_DUMP_TAIL) - d1.tell()
                    per_row = (d1.tell() - table_start) / start if start else 250
                    n = min(_ROWS_PER_BLOCK, int(left / per_row) + 1)
                    if left <= 0 and start > 0:
                        break
                if n <= 0:
                    break
                ids, secs, accts = _dump_block(bank, table, seed, block, start, n)
                make = bank.acc_rows if table == 0 else bank.tx_rows
                rows = make(rng_for(seed, 12, table, block), ids, secs, accts)
                d1.write("".join(rows).encode())
                rows2, c, k = _next_day(
                    bank,
                    table,
                    rows,
                    (ids, secs, accts),
                    rng_for(seed, 13, table, block),
                    new_id,
                    edit,
                )
                d2.write("".join(rows2).encode())
                new_id += k
                stats["rows"] += n
                stats["changed"] += c
                stats["inserted"] += k
                block, start = block + 1, start + n
        # day 2's new transactions, after the last one of day 1
        rng = rng_for(seed, 14)
        k = round(stats["rows"] * edit.appended)
        tail_ids = np.arange(int(ids[-1]) + 1, int(ids[-1]) + 1 + k)
        tail_secs = int(secs[-1]) + 60 + np.sort(rng.integers(0, 86400, k))
        d2.write(
            "".join(
                bank.tx_rows(rng, tail_ids, tail_secs, rng.integers(0, bank.accounts, k))
            ).encode()
        )
        stats["appended"] = k
        for f in (d1, d2):
            f.write(_DUMP_TAIL.encode())
    return {
        **stats,
        "accounts": bank.accounts,
        "edit": asdict(edit),
        "files_day1": 1,
        "bytes_day1": (root / "day1" / "bank.sql").stat().st_size,
        "bytes_day2": (root / "day2" / "replace" / "bank.sql").stat().st_size,
    }


# ------------------------------------------------------------------------------ documents

_DEPTS = (
    "finance",
    "legal",
    "hr",
    "it",
    "audit",
    "risk",
    "operations",
    "compliance",
    "credit",
    "treasury",
    "archive",
)
_SUBJECTS = (
    "contracts",
    "invoices",
    "reports",
    "minutes",
    "scans",
    "statements",
    "policies",
    "loans",
    "audits",
)
_COMPRESSIBLE = ("txt", "csv", "xml", "json")
_INCOMPRESSIBLE = {
    "pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n",
    "jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF",
    "zip": b"PK\x03\x04\x14\x00\x06\x00",
}


# (head, row, separator, tail) of each record format
_RECORD_FORMATS = {
    "csv": ("id,date,amount,name,note\n", "%d,%s,%d.%02d,%s,%s\n", "", ""),
    "xml": (
        '<?xml version="1.0" encoding="UTF-8"?>\n<records>\n',
        '  <record id="%d">\n    <date>%s</date><amount currency="CNY">%d.%02d</amount>\n'
        "    <name>%s</name><note>%s</note>\n  </record>\n",
        "",
        "</records>\n",
    ),
    "json": (
        "[\n",
        '  {"id": %d, "date": "%s", "amount": %d.%02d, "name": "%s", "note": "%s"}',
        ",\n",
        "\n]\n",
    ),
}


def _records(kind: str, size: int, rng: np.random.Generator) -> bytes:
    """CSV, XML or JSON records, ``size`` bytes or one record more."""
    n = size // {"csv": 40, "xml": 130, "json": 90}[kind] + 2
    ids = (rng.integers(1, 10**6) + np.arange(n)).tolist()
    dates = np.datetime_as_string(rng.integers(17000, 20000, n).astype("datetime64[D]")).tolist()
    cents = np.divmod(rng.lognormal(9, 2, n).astype(np.int64), 100)
    names = [
        f"{_SURNAMES[i]} {_SURNAMES[j].lower()}"
        for i, j in rng.integers(0, len(_SURNAMES), (n, 2)).tolist()
    ]
    notes = VOCAB.text(n * 32, rng).decode().replace("\n", " ").replace('"', "")
    cols = zip(
        ids,
        dates,
        cents[0].tolist(),
        cents[1].tolist(),
        names,
        (notes[i * 32 : i * 32 + 32].strip() for i in range(n)),
        strict=True,
    )
    head, row, sep, tail = _RECORD_FORMATS[kind]
    body, have = [], len(head) + len(tail)
    for r in cols:
        body.append(row % r)
        have += len(body[-1]) + len(sep)
        if have >= size:
            break
    return (head + sep.join(body) + tail).encode()


def _document(kind: str, size: int, rng: np.random.Generator) -> bytes:
    if kind in _INCOMPRESSIBLE:
        head = _INCOMPRESSIBLE[kind]
        return head + rng.bytes(max(0, size - len(head)))
    if kind == "txt":
        return VOCAB.text(size, rng)
    return _records(kind, size, rng)


def _doc_plan(
    rng: np.random.Generator, count: int, dirs: list[str], first: int
) -> list[tuple[str, str, int]]:
    """(relative path, kind, size) of ``count`` documents numbered from ``first``."""
    sizes = np.clip(rng.lognormal(np.log(12 * _KIB), 1.4, count), _KIB, _MIB).astype(np.int64)
    p_binary = np.where(sizes < 64 * _KIB, 0.3, 0.65)
    binary = rng.random(count) < p_binary
    text_kind = rng.integers(0, len(_COMPRESSIBLE), count)
    bin_kind = rng.integers(0, len(_INCOMPRESSIBLE), count)
    where = rng.integers(0, len(dirs), count)
    plan = []
    for i in range(count):
        kind = list(_INCOMPRESSIBLE)[bin_kind[i]] if binary[i] else _COMPRESSIBLE[text_kind[i]]
        stem = _SUBJECTS[(first + i) % len(_SUBJECTS)][:-1]
        name = f"{dirs[where[i]]}/{stem}-{first + i:06d}.{kind}"
        plan.append((name, kind, int(sizes[i])))
    return plan


def generate_docs(
    root: Path,
    scale: float,
    seed: int,
    *,
    modified: float = 0.03,
    added: float = 0.02,
    deleted: float = 0.01,
) -> dict[str, Any]:
    """About ``20,000 * scale`` documents in ``~300 * scale`` leaf directories, and day 2."""
    count = max(50, round(20_000 * scale))
    leaves = max(6, round(300 * scale))
    dirs = [
        f"{_DEPTS[i % len(_DEPTS)]}/{2015 + (i // len(_DEPTS)) % 10}/"
        f"{_SUBJECTS[i % len(_SUBJECTS)]}-{i:03d}"
        for i in range(leaves)
    ]
    plan = _doc_plan(rng_for(seed, 20), count, dirs, 0)
    for i, (rel, kind, size) in enumerate(plan):
        _write(root / "day1" / rel, _document(kind, size, rng_for(seed, 21, i)))
    rng = rng_for(seed, 22)
    order = rng.permutation(count)
    n_mod, n_del = round(count * modified), round(count * deleted)
    replace = root / "day2" / "replace"
    for i in np.sort(order[:n_mod]).tolist():
        rel, kind, size = plan[i]
        frng = rng_for(seed, 23, i)
        if kind in _INCOMPRESSIBLE:  # a re-scan or re-packed archive: new bytes throughout
            data = _document(kind, int(size * frng.uniform(0.8, 1.2)), frng)
        else:  # an edited document: new text inserted at one place
            old = (root / "day1" / rel).read_bytes()
            at = int(frng.integers(0, len(old) + 1))
            data = (
                old[:at]
                + VOCAB.text(max(100, int(size * frng.uniform(0.01, 0.1))), frng)
                + old[at:]
            )
        _write(replace / rel, data)
    gone = sorted(plan[i][0] for i in order[n_mod : n_mod + n_del].tolist())
    (root / "day2" / "delete.txt").write_text("".join(f"{g}\n" for g in gone))
    new = _doc_plan(rng_for(seed, 24), round(count * added), dirs, count)
    for j, (rel, kind, size) in enumerate(new):
        _write(replace / rel, _document(kind, size, rng_for(seed, 25, j)))
    return {
        "files_day1": count,
        "dirs": leaves,
        "modified": n_mod,
        "deleted": n_del,
        "added": len(new),
        "bytes_day1": dir_size(root / "day1"),
        "incompressible_files": sum(k in _INCOMPRESSIBLE for _, k, _ in plan),
    }


# ---------------------------------------------------------------------------- VM image

_EXTENT_KINDS = ("hole", "meta", "text", "binary", "random")
_EXTENT_WEIGHTS = (0.15, 0.10, 0.20, 0.30, 0.25)  # of extents; holes run longer (see below)


def _low_entropy(n: int, rng: np.random.Generator) -> bytes:
    """Bytes whose bits are 1 with probability 1/8 (machine-code-like, zstd shrinks ~1.7x)."""
    a, b, c = (np.frombuffer(rng.bytes(n), np.uint8) for _ in range(3))
    return (a & b & c).tobytes()


def _extent(kind: str, n: int, rng: np.random.Generator) -> bytes:
    if kind == "meta":  # inode-table-like: 256-byte records, 48 bytes used
        table = np.zeros((n // 256, 256), np.uint8)
        table[:, :48] = np.frombuffer(_low_entropy(len(table) * 48, rng), np.uint8).reshape(-1, 48)
        return table.tobytes()
    if kind == "text":
        return VOCAB.text(n, rng)
    if kind == "binary":
        return _low_entropy(n, rng)
    return rng.bytes(n)


def generate_image(
    root: Path, scale: float, seed: int, *, rewritten: float = 0.01
) -> dict[str, Any]:
    """``disk.img`` of ``1 GiB * scale``, sparse, and 1% of its 4 KiB blocks rewritten on day 2."""
    blocks = max(256, int(_GIB * scale) // BLOCK)
    path = root / "day1" / "disk.img"
    path.parent.mkdir(parents=True)
    rng = rng_for(seed, 30)
    kinds = {k: 0 for k in _EXTENT_KINDS}
    with open(path, "wb") as f:
        f.truncate(blocks * BLOCK)
        at = 0
        while at < blocks:
            kind = (
                "meta"
                if at == 0
                else _EXTENT_KINDS[rng.choice(len(_EXTENT_KINDS), p=_EXTENT_WEIGHTS)]
            )
            median = 256 if kind == "hole" else 48  # blocks: 1 MiB zero runs, 192 KiB extents
            n = min(blocks - at, max(1, int(rng.lognormal(np.log(median), 1.5))))
            kinds[kind] += n
            if kind != "hole":
                f.seek(at * BLOCK)
                for part in range(0, n, 2048):
                    f.write(_extent(kind, min(2048, n - part) * BLOCK, rng))
            at += n
    rng = rng_for(seed, 31)
    pick = np.sort(rng.choice(blocks, round(blocks * rewritten), replace=False))
    patch = root / "day2" / "patch"
    patch.mkdir(parents=True)
    np.save(patch / "disk.img.offsets.npy", pick.astype(np.int64) * BLOCK)
    with open(patch / "disk.img.blocks", "wb") as f:
        for kind in rng.choice(["text", "binary", "random"], len(pick), p=[0.3, 0.4, 0.3]).tolist():
            f.write(_extent(kind, BLOCK, rng))
    (root / "day2" / "replace").mkdir()
    (root / "day2" / "delete.txt").write_text("")
    return {
        "files_day1": 1,
        "bytes_day1": blocks * BLOCK,
        "blocks": blocks,
        "rewritten_blocks": len(pick),
        **{f"{k}_blocks": v for k, v in kinds.items()},
    }


# ------------------------------------------------------------------------------- manifest

GENERATORS: dict[str, Callable[..., dict[str, Any]]] = {
    "dump": generate_dump,
    "docs": generate_docs,
    "image": generate_image,
}


def ensure_dataset(name: str, root: Path, scale: float, seed: int) -> tuple[dict[str, Any], bool]:
    """The manifest of data set ``name`` under ``root``, generating it unless an up-to-date one
    is there already (same seed, scale and generator version). Returns (manifest, generated)."""
    wanted = {"dataset": name, "seed": seed, "scale": scale, "version": GENERATOR_VERSION}
    manifest_file = root / "manifest.json"
    if manifest_file.exists():
        manifest = json.loads(manifest_file.read_text())
        if {k: manifest.get(k) for k in wanted} == wanted:
            return manifest, False
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    start = time.perf_counter()
    stats = GENERATORS[name](root, scale, seed)
    manifest = {**wanted, "generate_s": round(time.perf_counter() - start, 2), "stats": stats}
    manifest_file.write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest, True
