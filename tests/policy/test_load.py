"""The policy loader: the shipped examples load, and every malformed value names file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from drvault.errors import EXIT_USAGE, ConfigError
from drvault.policy.load import load_config, parse_config
from drvault.policy.model import Config, Where
from drvault.policy.yamlnodes import MappingReader, compose

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
FILE = "t.yaml"

BASE = """\
version: 1
centers:
  prod:
    role: production
    site: {city: Guangzhou, province: Guangdong, lat: 23.13, lon: 113.26}
    url: /srv/prod
  near:
    role: same_city_dr
    site: {city: Guangzhou, province: Guangdong}
    distance_km: 35
    url: /srv/near
  far:
    role: remote_dr
    site: {city: Zixing, province: Hunan, lat: 25.97, lon: 113.40}
    url: /srv/far
backup_sets:
  ledger:
    paths: [/srv/data]
    classification: important
    rpo: 1h
    rto: 4h
    copies:
      near:
      far: {rpo: 4h}
"""


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line containing ``needle``."""
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in the text")


def edit(old: str, new: str, text: str = BASE) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, FILE)
    message = str(info.value)
    assert "\n" not in message
    return message


def assert_error(text: str, needle: str, *parts: str) -> str:
    """The error points at the line holding ``needle`` and contains every part."""
    message = error_of(text)
    assert message.startswith(f"{FILE}:{line_of(text, needle)}: "), message
    for part in parts:
        assert part in message, message
    return message


# --- the shipped examples -------------------------------------------------------------------


def test_example_config_loads() -> None:
    path = CONFIGS / "drvault.example.yaml"
    config = load_config(path)
    text = path.read_text(encoding="utf-8")
    assert config.path == str(path)
    assert [c.id for c in config.centers] == ["gz-prod", "gz-dr2", "zixing-djh", "shaoguan-sdv"]
    assert [c.role for c in config.centers] == [
        "production",
        "same_city_dr",
        "remote_dr",
        "archive_vault",
    ]
    prod = config.center("gz-prod")
    assert prod.url == "/srv/drvault"
    assert prod.where == Where(str(path), line_of(text, "  gz-prod:"))
    same_city = config.center("gz-dr2")
    assert same_city.url.startswith("s3:https://")
    assert same_city.distance_km == 45.0
    assert "s3.profile=gz-dr2" in same_city.options
    assert same_city.limit_upload == 200 << 20
    remote = config.center("zixing-djh")
    assert remote.url.startswith("sftp://")
    assert (remote.site.lat, remote.site.lon) == (25.97, 113.40)
    assert any(o.startswith("sftp.key=") for o in remote.options)
    assert any(o.startswith("sftp.known-hosts=") for o in remote.options)
    assert remote.hazard_zone == config.center("shaoguan-sdv").hazard_zone == "nanling"
    assert prod.hazard_zone is None
    assert config.profile.sector == "bank"
    assert config.profile.bank_tier == "large_cross_province"
    assert config.thresholds.drill_max_age_days == 365.0

    ledger = config.backup_set("core-ledger")
    assert ledger.classification == "core"
    assert (ledger.rpo, ledger.rto) == (1800.0, 14400.0)
    assert ledger.production == "gz-prod"
    assert ledger.repository.suite == "gm"
    assert ledger.repository.cipher is None
    assert {c.center: c.rpo for c in ledger.copies} == {
        "gz-dr2": 1800.0,
        "zixing-djh": 14400.0,
        "shaoguan-sdv": 86400.0,
    }
    vault_copy = ledger.copies[2]
    assert vault_copy.retention is not None and vault_copy.retention.daily == 90
    assert ledger.retention is not None and ledger.retention.within == 2 * 86400
    assert config.holders(ledger)[0].id == "gz-prod"

    docs = config.backup_set("doc-archive")
    assert docs.classification == "general"
    assert docs.repository.suite == "intl"
    assert docs.repository.chunk_avg == 1 << 20
    assert (docs.rpo, docs.rto) == (86400.0, 86400.0)
    assert docs.copies[0].rpo == docs.rpo


def test_demo_config_loads() -> None:
    config = load_config(str(CONFIGS / "demo.yaml"))
    assert config.state_dir == "/tmp/drvault-demo/state"
    assert config.metrics_file == "/tmp/drvault-demo/state/drvault.prom"
    assert {c.id: c.url for c in config.centers} == {
        "prod": "/tmp/drvault-demo/centers/prod",
        "same-city": "/tmp/drvault-demo/centers/same-city",
        "remote": "/tmp/drvault-demo/centers/remote",
    }
    assert config.center("same-city").distance_km == 35.0
    assert config.center("same-city").site.lat is None
    (demo,) = config.sets
    assert demo.id == "demo-ledger"
    assert demo.paths == ("/tmp/drvault-demo/data",)
    assert demo.classification == "important"
    assert demo.repository.suite == "intl"
    assert demo.password_file == "/tmp/drvault-demo/password"
    assert (demo.rpo, demo.rto) == (3600.0, 14400.0)
    assert [(c.center, c.rpo) for c in demo.copies] == [("same-city", 3600.0), ("remote", 14400.0)]


# --- the base config and defaults -----------------------------------------------------------


def test_base_config_and_defaults() -> None:
    config = parse_config(BASE, FILE)
    defaults = Config(path=FILE, centers=(), sets=())
    assert config.state_dir == defaults.state_dir
    assert config.metrics_file is None
    assert config.profile == defaults.profile
    assert config.thresholds == defaults.thresholds
    ledger = config.backup_set("ledger")
    assert ledger.production == "prod"
    assert ledger.where == Where(FILE, line_of(BASE, "  ledger:"))
    assert config.center("far").where == Where(FILE, line_of(BASE, "  far:"))
    assert config.center("prod").tier == "hot"
    assert config.center("prod").site.jurisdiction == "CN-mainland"


def test_copy_rpo_defaults_to_the_set_rpo() -> None:
    near, far = parse_config(BASE, FILE).backup_set("ledger").copies
    assert (near.center, near.rpo, near.retention) == ("near", 3600.0, None)
    assert (far.center, far.rpo) == ("far", 14400.0)
    assert near.where == Where(FILE, line_of(BASE, "      near:"))
    assert far.where == Where(FILE, line_of(BASE, "      far: {rpo"))


def test_thresholds_and_profile_are_read() -> None:
    text = BASE + (
        "thresholds:\n  remote_km_min: 250\n  drill_max_age: 180d\n  level_window: 2w\n"
        "  require_distinct_province_for_remote: no\n  min_centers: 2\n"
        "profile:\n  standard: gbt20988-2025\n  require_gm_for: [core, important]\n"
    )
    config = parse_config(text, FILE)
    assert config.thresholds.remote_km_min == 250.0
    assert config.thresholds.drill_max_age_days == 180.0
    assert config.thresholds.level_window_days == 14.0
    assert config.thresholds.require_distinct_province_for_remote is False
    assert config.thresholds.min_centers == 2
    assert config.profile.standard == "gbt20988-2025"
    assert config.profile.require_gm_for == ("core", "important")


def test_options_and_rates_are_kept() -> None:
    text = edit(
        "    url: /srv/far\n",
        "    url: sftp://dr@far.example:2222/srv/far/\n    options:\n"
        "      sftp.key: /etc/k\n      connections: 4\n    limit_download: 20M\n",
    )
    far = parse_config(text, FILE).center("far")
    assert far.url == "sftp://dr@far.example:2222/srv/far"
    assert far.options == ("sftp.key=/etc/k", "connections=4")
    assert far.limit_download == 20 << 20
    assert far.limit_upload is None


# --- reading the file -----------------------------------------------------------------------


def test_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError, match=r"absent\.yaml: cannot read: No such file or directory$"):
        load_config(missing)
    with pytest.raises(ConfigError, match=": cannot read: Is a directory"):
        load_config(tmp_path)


def test_load_names_the_file_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "drvault.yaml"
    path.write_text(edit("version: 1", "version: 2"), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}:1: version: unsupported version 2 (expected 1)"
    assert info.value.exit_code == EXIT_USAGE


def test_yaml_syntax_error_names_file_and_line() -> None:
    text = edit("    paths: [/srv/data]", "    paths: [/srv/data\n    oops: : :")
    message = error_of(text)
    assert message.startswith(f"{FILE}:"), message
    assert "invalid YAML" in message
    text = edit("    rto: 4h", "   rto: 4h")
    assert_error(text, "   rto: 4h", "invalid YAML")


def test_tab_indentation_names_the_line() -> None:
    text = edit("    rto: 4h", "\trto: 4h")
    assert_error(text, "\trto", "invalid YAML", "'\\t'")


def test_several_documents_are_refused() -> None:
    assert_error(BASE + "---\nversion: 1\n", "---", "invalid YAML", "another document")


def test_empty_and_non_mapping_files() -> None:
    assert error_of("") == f"{FILE}:1: empty configuration (expected a mapping with version: 1)"
    assert error_of("# nothing\n").startswith(f"{FILE}:1: empty configuration")
    assert error_of("- a\n- b\n") == f"{FILE}:1: expected a mapping, got a list"


# --- structure: required, unknown and duplicate keys ----------------------------------------


def test_missing_version() -> None:
    text = edit("version: 1\n", "")
    assert error_of(text) == f"{FILE}:1: missing required key 'version'"


def test_unsupported_version() -> None:
    assert_error(edit("version: 1", "version: 2"), "version: 2", "version: unsupported version 2")


def test_version_must_be_an_integer() -> None:
    text = edit("version: 1", 'version: "1"')
    assert_error(text, "version:", "version: expected an integer, got a string ('1')")


def test_missing_centers_and_backup_sets() -> None:
    start = BASE.index("backup_sets:")
    assert error_of(BASE[:start]) == f"{FILE}:1: missing required key 'backup_sets'"
    text = "version: 1\nbackup_sets: {}\n"
    assert error_of(text) == f"{FILE}:1: missing required key 'centers'"


def test_unknown_top_level_key() -> None:
    text = BASE + "center: {}\n"
    message = assert_error(text, "center: {}", "unknown key 'center'")
    assert "(known: version, state_dir, metrics_file" in message


def test_unknown_center_key_is_reported_before_the_missing_one() -> None:
    text = edit("    role: production", "    rol: production")
    message = assert_error(text, "rol:", "centers.prod: unknown key 'rol' (known: role, site, url")
    assert "missing" not in message


@pytest.mark.parametrize(
    ("old", "new", "needle", "path"),
    [
        ("distance_km: 35", "distance: 35", "distance: 35", "centers.near"),
        ("lat: 23.13,", "latitude: 23.13,", "latitude", "centers.prod.site"),
        ("rto: 4h", "rto: 4h\n    retention: {dayly: 3}", "dayly", "backup_sets.ledger.retention"),
        ("far: {rpo: 4h}", "far: {rpo: 4h, rpq: 1}", "rpq", "backup_sets.ledger.copies.far"),
        ("rto: 4h", "rto: 4h\n    repository: {suit: gm}", "suit", "backup_sets.ledger.repository"),
        ("rto: 4h", "rto: 4h\n    copy: {}", "copy: {}", "backup_sets.ledger"),
    ],
)
def test_unknown_nested_keys(old: str, new: str, needle: str, path: str) -> None:
    assert_error(edit(old, new), needle, f"{path}: unknown key ")


def test_unknown_profile_and_threshold_keys() -> None:
    text = BASE + "profile:\n  sectr: bank\n"
    assert_error(text, "sectr", "profile: unknown key 'sectr' (known: standard, sector")
    text = BASE + "thresholds:\n  remote_km: 300\n"
    assert_error(text, "remote_km:", "thresholds: unknown key 'remote_km'")


@pytest.mark.parametrize(
    ("old", "new", "needle", "parts"),
    [
        ("    role: production\n", "", "  prod:", ("centers.prod: missing required key 'role'",)),
        ("    url: /srv/near\n", "", "  near:", ("centers.near: missing required key 'url'",)),
        ("    paths: [/srv/data]\n", "", "  ledger:", ("backup_sets.ledger: missing", "'paths'")),
        ("    rpo: 1h\n", "", "  ledger:", ("backup_sets.ledger: missing required key 'rpo'",)),
        (
            "    classification: important\n",
            "",
            "  ledger:",
            ("backup_sets.ledger: missing required key 'classification'",),
        ),
    ],
)
def test_missing_required_keys(old: str, new: str, needle: str, parts: tuple[str, ...]) -> None:
    assert_error(edit(old, new), needle, *parts)


def test_missing_city_names_the_site() -> None:
    text = edit("city: Zixing, ", "")
    assert_error(text, "province: Hunan", "centers.far.site: missing required key 'city'")


def test_null_required_value() -> None:
    text = edit("    rto: 4h", "    rto:")
    assert_error(text, "    rto:", "backup_sets.ledger.rto: missing value")


def test_duplicate_center_id() -> None:
    text = edit("  far:\n", "  near:\n")
    second = BASE.splitlines().index("  far:") + 1
    message = error_of(text)
    assert message == (
        f"{FILE}:{second}: centers: duplicate key 'near' (first at line {line_of(BASE, '  near:')})"
    )


def test_duplicate_backup_set_id() -> None:
    text = BASE + "  ledger:\n    paths: [/x]\n"
    message = error_of(text)
    assert message.startswith(f"{FILE}:{len(text.splitlines()) - 1}: backup_sets: duplicate key")


def test_duplicate_key_inside_a_mapping() -> None:
    text = edit("    rto: 4h", "    rto: 4h\n    rto: 5h")
    assert_error(text, "rto: 5h", "backup_sets.ledger: duplicate key 'rto'")


@pytest.mark.parametrize("bad", ["Prod", "-prod", "pr od", "p" * 64, "prod.1"])
def test_invalid_center_id(bad: str) -> None:
    text = edit("  prod:\n", f"  {bad}:\n").replace("[prod]", "[x]")
    assert_error(text, f"  {bad}:", "centers: invalid center id", repr(bad))


def test_invalid_backup_set_id() -> None:
    text = edit("  ledger:", "  Ledger:")
    assert_error(text, "Ledger:", "backup_sets: invalid backup set id 'Ledger'")


def test_id_of_63_characters_is_accepted() -> None:
    long_id = "a" * 63
    config = parse_config(edit("  ledger:", f"  {long_id}:"), FILE)
    assert config.sets[0].id == long_id


# --- types and enums ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "path", "allowed"),
    [
        ("role: remote_dr", "role: remote", "centers.far.role", "production, same_city_dr"),
        ("url: /srv/far", "url: /srv/far\n    tier: frozen", "centers.far.tier", "hot, warm, cold"),
        (
            "classification: important",
            "classification: secret",
            "backup_sets.ledger.classification",
            "core, important, general",
        ),
        (
            "rto: 4h",
            "rto: 4h\n    repository: {suite: nsa}",
            "backup_sets.ledger.repository.suite",
            "intl, gm",
        ),
        (
            "rto: 4h",
            "rto: 4h\n    repository: {cipher: sm4-gcm}",
            "backup_sets.ledger.repository.cipher",
            "aes-256-gcm, chacha20-poly1305",
        ),
        (
            "rto: 4h",
            "rto: 4h\n    repository: {id_hash: sha1}",
            "backup_sets.ledger.repository.id_hash",
            "blake3, hmac-sha256",
        ),
    ],
)
def test_bad_enum_values(old: str, new: str, path: str, allowed: str) -> None:
    text = edit(old, new)
    needle = new.splitlines()[-1].strip()
    assert_error(text, needle, f"{path}: ", "is not one of", allowed)


@pytest.mark.parametrize(
    ("block", "needle", "path", "allowed"),
    [
        ("profile:\n  standard: gbt20988\n", "standard:", "profile.standard", "gbt20988-2007"),
        ("profile:\n  sector: telco\n", "sector:", "profile.sector", "bank, securities, gov"),
        ("profile:\n  bank_tier: huge\n", "bank_tier:", "profile.bank_tier", "other"),
        (
            "profile:\n  require_gm_for:\n    - core\n    - secret\n",
            "- secret",
            "profile.require_gm_for[1]",
            "core, important, general",
        ),
    ],
)
def test_bad_profile_values(block: str, needle: str, path: str, allowed: str) -> None:
    assert_error(BASE + block, needle, f"{path}: ", allowed)


@pytest.mark.parametrize(
    ("block", "needle", "parts"),
    [
        (
            "profile:\n  mlps_level: 5\n",
            "mlps_level",
            ("profile.mlps_level: 5 is out of range 1..4",),
        ),
        ("profile:\n  crypto_level: 0\n", "crypto_level", ("profile.crypto_level: 0 is out",)),
        ("thresholds:\n  remote_km_min: far\n", "remote_km_min", ("expected a number",)),
        ("thresholds:\n  remote_km_min: -1\n", "remote_km_min", ("below the minimum 0",)),
        ("thresholds:\n  min_centers: 0\n", "min_centers", ("thresholds.min_centers: 0",)),
        ("thresholds:\n  min_cities: 2.5\n", "min_cities", ("expected an integer",)),
        (
            "thresholds:\n  require_distinct_province_for_remote: maybe\n",
            "require_distinct",
            ("expected true or false, got a string ('maybe')",),
        ),
        ("thresholds:\n  drill_max_age: 1y\n", "drill_max_age", ("invalid duration '1y'",)),
        ("thresholds:\n  level_window: 0d\n", "level_window", ("above zero",)),
        ("thresholds:\n  dr_independence_km: .inf\n", "dr_independence", ("finite",)),
    ],
)
def test_bad_profile_and_threshold_numbers(block: str, needle: str, parts: tuple[str, ...]) -> None:
    assert_error(BASE + block, needle, *parts)


def test_quoted_number_is_a_string_and_yes_no_are_booleans() -> None:
    text = edit("distance_km: 35", 'distance_km: "35"')
    assert_error(text, "distance_km", "centers.near.distance_km: expected a number, got a string")
    text = edit("city: Zixing", "city: no")
    assert_error(text, "city: no", "centers.far.site.city: expected a string, got a boolean")
    text = edit("province: Hunan", "province: 3")
    assert_error(text, "province: 3", "expected a string, got an integer (3)")


def test_list_where_a_value_is_expected() -> None:
    text = edit("url: /srv/far", "url: [/srv/far]")
    assert_error(text, "url: [", "centers.far.url: expected a single value, got a list")


def test_unknown_yaml_tag() -> None:
    text = edit("province: Hunan", "province: !region Hunan")
    assert_error(text, "!region", "centers.far.site.province", "!region")


def test_merge_keys_are_refused() -> None:
    text = edit("    rto: 4h\n", "    rto: 4h\n    <<: {tags: [x]}\n")
    assert_error(text, "<<:", "backup_sets.ledger: merge keys (<<) are not supported")


def test_anchors_and_aliases_work() -> None:
    text = edit("site: {city: Zixing, province: Hunan, lat: 25.97, lon: 113.40}", "site: *gz")
    text = edit(
        "site: {city: Guangzhou, province: Guangdong}", "site: &gz {city: X, province: Y}", text
    )
    config = parse_config(text, FILE)
    assert config.center("far").site == config.center("near").site


# --- classification -------------------------------------------------------------------------


def test_state_secret_is_refused() -> None:
    text = edit("classification: important", "classification: state_secret")
    message = assert_error(text, "state_secret", "backup_sets.ledger.classification: ")
    assert "must not hold" in message
    assert "涉密" in message
    assert "separate regime" in message


# --- sites ----------------------------------------------------------------------------------


def test_lat_without_lon() -> None:
    text = edit("lat: 25.97, lon: 113.40", "lat: 25.97")
    assert_error(text, "lat: 25.97", "centers.far.site: give both lat and lon, or neither")


@pytest.mark.parametrize(
    ("old", "new", "path"),
    [
        ("lat: 25.97", "lat: 95", "centers.far.site.lat: 95 is out of range -90..90"),
        ("lon: 113.40", "lon: 190.5", "centers.far.site.lon: 190.5 is out of range -180..180"),
        ("distance_km: 35", "distance_km: -3", "centers.near.distance_km: -3 is below"),
    ],
)
def test_coordinates_and_distance_ranges(old: str, new: str, path: str) -> None:
    assert_error(edit(old, new), new, path)


def test_jurisdiction_is_read() -> None:
    text = edit("province: Hunan,", "province: Hunan, jurisdiction: HK,")
    assert parse_config(text, FILE).center("far").site.jurisdiction == "HK"


# --- urls, options and rates ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "parts"),
    [
        ("srv/far", ("centers.far.url: 'srv/far': a local path must be absolute",)),
        ("./far", ("must be absolute",)),
        ("s3:ftp://host/bucket", ("centers.far.url: s3:ftp://host/bucket: expected s3:http",)),
        ("s3:https://host", ("centers.far.url: ", "no bucket")),
        ("s3:https://key:secret@host/b", ("no credentials in S3 URLs",)),
        ("sftp://host", ("centers.far.url: sftp://host: no repository path",)),
        ("sftp://u:pw@host/x", ("no passwords in URLs",)),
        ("sftp://host:99999/x", ("bad port",)),
        ("http://host/x", ("centers.far.url: unknown URL scheme 'http'",)),
    ],
)
def test_bad_urls(url: str, parts: tuple[str, ...]) -> None:
    assert_error(edit("url: /srv/far", f"url: {url}"), f"url: {url}", *parts)


def test_s3_url_with_credentials_is_not_echoed() -> None:
    message = error_of(edit("url: /srv/far", "url: s3:https://key:hunter2@host/b"))
    assert "hunter2" not in message


@pytest.mark.parametrize(
    ("option", "parts"),
    [
        ("connections: 0", ("centers.far.options.connections: ", "positive integer")),
        ("s3.bogus: 1", ("centers.far.options.s3.bogus: ", "unknown option")),
        ("nonsense: 1", ("centers.far.options.nonsense: ", "unknown option")),
        ("s3.path-style: sometimes", ("expected true or false",)),
        ("limit-upload: fast", ("not a rate",)),
    ],
)
def test_bad_transport_options(option: str, parts: tuple[str, ...]) -> None:
    text = edit("    url: /srv/far\n", f"    url: /srv/far\n    options:\n      {option}\n")
    assert_error(text, option, *parts)


def test_bad_rate() -> None:
    text = edit("    url: /srv/far\n", "    url: /srv/far\n    limit_upload: lots\n")
    assert_error(text, "limit_upload", "centers.far.limit_upload: 'lots': not a rate")


# --- production centers ---------------------------------------------------------------------


def test_no_production_center() -> None:
    text = edit("role: production", "role: same_city_dr")
    assert_error(text, "centers:", "centers: no center has role production")


def test_several_production_centers_need_production_key() -> None:
    text = edit("role: same_city_dr", "role: production")
    message = assert_error(text, "  ledger:", "backup_sets.ledger: several production centers")
    assert "prod, near" in message


def test_production_key_picks_one_of_several() -> None:
    text = edit("role: same_city_dr", "role: production")
    text = edit("    rto: 4h\n", "    rto: 4h\n    production: near\n", text)
    text = edit("      near:\n", "", text)
    ledger = parse_config(text, FILE).backup_set("ledger")
    assert ledger.production == "near"
    assert [c.center for c in ledger.copies] == ["far"]


def test_production_unknown_center() -> None:
    text = edit("    rto: 4h\n", "    rto: 4h\n    production: paris\n")
    assert_error(
        text,
        "production: paris",
        "backup_sets.ledger.production: unknown center 'paris' (known: prod, near, far)",
    )


def test_production_must_have_role_production() -> None:
    text = edit("    rto: 4h\n", "    rto: 4h\n    production: far\n")
    assert_error(
        text,
        "production: far",
        "backup_sets.ledger.production: center 'far' has role remote_dr, not production",
    )


# --- copies ---------------------------------------------------------------------------------


def test_copy_to_unknown_center() -> None:
    text = edit("      far: {rpo: 4h}", "      faraway: {rpo: 4h}")
    assert_error(
        text,
        "faraway",
        "backup_sets.ledger.copies: unknown center 'faraway' (known: prod, near, far)",
    )


def test_copy_to_the_sets_production_center() -> None:
    text = edit("      near:\n", "      prod:\n")
    assert_error(text, "      prod:", "backup_sets.ledger.copies: 'prod' is this set's production")


def test_copy_to_another_production_center() -> None:
    text = edit("role: same_city_dr", "role: production")
    text = edit("    rto: 4h\n", "    rto: 4h\n    production: prod\n", text)
    assert_error(text, "      near:", "backup_sets.ledger.copies: 'near' has role production")


def test_copy_rpo_and_retention() -> None:
    text = edit("far: {rpo: 4h}", "far: {rpo: 0s}")
    assert_error(text, "far: {rpo", "backup_sets.ledger.copies.far.rpo: expected a duration above")
    text = edit("far: {rpo: 4h}", "far: {retention: {daily: 90}}")
    far = parse_config(text, FILE).backup_set("ledger").copies[1]
    assert far.rpo == 3600.0
    assert far.retention is not None and far.retention.daily == 90


def test_copy_options_must_be_a_mapping() -> None:
    text = edit("far: {rpo: 4h}", "far: 4h")
    assert_error(text, "far: 4h", "backup_sets.ledger.copies.far: expected a mapping")


# --- hazard zones ---------------------------------------------------------------------------


def test_hazard_zones_mark_centers() -> None:
    config = parse_config(BASE + "hazard_zones:\n  south: [near, far]\n", FILE)
    assert config.center("near").hazard_zone == "south"
    assert config.center("far").hazard_zone == "south"
    assert config.center("prod").hazard_zone is None


def test_hazard_zone_unknown_center() -> None:
    text = BASE + "hazard_zones:\n  south:\n    - near\n    - nowhere\n"
    assert_error(
        text,
        "- nowhere",
        "hazard_zones.south[1]: unknown center 'nowhere' (known: prod, near, far)",
    )


def test_center_in_two_hazard_zones() -> None:
    text = BASE + "hazard_zones:\n  south: [near]\n  north:\n    - near\n"
    assert_error(
        text, "    - near", "hazard_zones.north[0]: center 'near' is already in zone 'south'"
    )


# --- backup set values ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "needle", "parts"),
    [
        (
            "paths: [/srv/data]",
            "paths: []",
            "paths:",
            ("backup_sets.ledger.paths: expected a non",),
        ),
        ("paths: [/srv/data]", "paths: /srv/data", "paths:", ("expected a list",)),
        (
            "paths: [/srv/data]",
            "paths:\n      - /srv/data\n      - data",
            "- data",
            ("backup_sets.ledger.paths[1]: 'data': backup paths must be absolute",),
        ),
        ("rpo: 1h", "rpo: 1 hour", "rpo:", ("backup_sets.ledger.rpo: invalid duration",)),
        ("rpo: 1h", "rpo: 1:30", "rpo:", ("backup_sets.ledger.rpo: invalid duration '1:30'",)),
        ("rto: 4h", "rto: -4h", "rto:", ("backup_sets.ledger.rto: negative duration",)),
        ("rto: 4h", "rto: 0", "rto:", ("backup_sets.ledger.rto: expected a duration above zero",)),
        (
            "rto: 4h",
            "rto: 4h\n    target_dr_level: 7",
            "target_dr_level",
            ("backup_sets.ledger.target_dr_level: 7 is out of range 1..6",),
        ),
        (
            "rto: 4h",
            "rto: 4h\n    retention: {daily: -1}",
            "retention",
            ("backup_sets.ledger.retention.daily: -1 is below the minimum 0",),
        ),
        (
            "rto: 4h",
            "rto: 4h\n    retention: {within: soon}",
            "retention",
            ("backup_sets.ledger.retention.within: invalid duration 'soon'",),
        ),
        ("rto: 4h", "rto: 4h\n    excludes: '*.tmp'", "excludes", ("expected a list",)),
    ],
)
def test_bad_backup_set_values(old: str, new: str, needle: str, parts: tuple[str, ...]) -> None:
    assert_error(edit(old, new), needle, *parts)


@pytest.mark.parametrize(
    ("repository", "parts"),
    [
        ("{suite: gm, cipher: aes-256-gcm}", ("repository.cipher: the gm suite fixes it",)),
        ("{suite: gm, id_hash: blake3}", ("repository.id_hash: the gm suite fixes it",)),
        ("{chunk_avg: 48K}", ("repository.chunk_avg: 49152 bytes is not a power of two",)),
        ("{chunk_avg: 2K}", ("repository.chunk_avg: 2048 bytes is out of range 4K..",)),
        ("{chunk_avg: 8M}", ("repository.chunk_avg: ", "out of range")),
        ("{chunk_avg: big}", ("repository.chunk_avg: invalid size 'big'",)),
        ("{compression_level: 20}", ("repository.compression_level: 20 is out of range 1..19",)),
        ("{pack_size: 512K}", ("repository.pack_size: 524288 bytes is out of range 1M..256M",)),
        ("{pack_size: 1G}", ("repository.pack_size: ", "out of range 1M..256M")),
    ],
)
def test_bad_repository_settings(repository: str, parts: tuple[str, ...]) -> None:
    text = edit("    rto: 4h\n", f"    rto: 4h\n    repository: {repository}\n")
    assert_error(text, "repository:", *(f"backup_sets.ledger.{p}" for p in parts[:1]), *parts[1:])


def test_repository_settings_are_read() -> None:
    text = edit(
        "    rto: 4h\n",
        "    rto: 4h\n    repository:\n      suite: intl\n      cipher: chacha20-poly1305\n"
        "      id_hash: hmac-sha256\n      chunk_avg: 4M\n      compression_level: 19\n"
        "      pack_size: 256M\n",
    )
    repository = parse_config(text, FILE).backup_set("ledger").repository
    assert repository.cipher == "chacha20-poly1305"
    assert repository.id_hash == "hmac-sha256"
    assert repository.chunk_avg == 4 << 20
    assert repository.compression_level == 19
    assert repository.pack_size == 256 << 20


# --- the node reader on its own -------------------------------------------------------------


def test_scalars_resolve_like_the_safe_loader() -> None:
    text = 'i: 3\nf: 1.5\ns: "3"\nb: yes\nn: ~\n'
    node = compose(text, FILE)
    assert node is not None
    reader = MappingReader.root(node, FILE)
    scalars = {name: reader.required(name).scalar() for name in ("i", "f", "s", "b")}
    assert scalars == {"i": 3, "f": 1.5, "s": "3", "b": True}
    assert type(scalars["i"]) is int
    assert reader.optional("n") is None
    reader.finish()


def test_finish_rejects_keys_nobody_took() -> None:
    node = compose("a: 1\nb: 2\nc: 3\n", FILE)
    assert node is not None
    reader = MappingReader.root(node, FILE)
    assert reader.req_int("a") == 1
    reader.optional("z")
    with pytest.raises(ConfigError, match=r"^t\.yaml:2: unknown key 'b' \(known: a, z\)$"):
        reader.finish()


# ------------------------------------------------------------------ storage and immutability

S3_NEAR = "    url: s3:http://127.0.0.1:9000/near\n"


def with_near(extra: str, url: str = S3_NEAR) -> str:
    return edit("    url: /srv/near\n", url + extra)


def test_storage_ladder_and_immutability_are_read() -> None:
    text = with_near(
        "    storage:\n"
        "      data_class: STANDARD_IA\n"
        "      ladder: [{after: 7d, to: GLACIER}, {after: 97d, to: DEEP_ARCHIVE}]\n"
        "      thaw: {tier: Bulk, days: 3}\n"
        "    immutability: {mode: governance, days: 30}\n"
    )
    near = parse_config(text, FILE).center("near")
    assert near.storage.data_class == "STANDARD_IA"
    assert [(s.after, s.to) for s in near.storage.ladder] == [
        (7 * 86400.0, "GLACIER"),
        (97 * 86400.0, "DEEP_ARCHIVE"),
    ]
    assert (near.storage.thaw_tier, near.storage.thaw_days) == ("Bulk", 3)
    assert near.immutability is not None
    assert (near.immutability.mode, near.immutability.days) == ("governance", 30)


@pytest.mark.parametrize(
    ("extra", "url", "needle", "part"),
    [
        ("    storage: {data_class: GLACIER}\n", "    url: /srv/near\n", "storage:", "need an S3"),
        (
            "    immutability: {mode: compliance, days: 9}\n",
            "    url: /srv/near\n",
            "immutability",
            "append-only",
        ),
        (
            "    storage: {metadata_class: GLACIER}\n",
            S3_NEAR,
            "metadata_class",
            "instantly readable",
        ),
        ("    storage: {data_class: COLD}\n", S3_NEAR, "data_class", "GLACIER"),
        (
            "    storage: {ladder: [{after: 9d, to: DEEP_ARCHIVE}, {after: 7d, to: GLACIER}]}\n",
            S3_NEAR,
            "after: 7d",
            "later and be colder",
        ),
        ("    storage: {thaw: {tier: Fast}}\n", S3_NEAR, "tier: Fast", "Expedited"),
        ("    immutability: {mode: compliance}\n", S3_NEAR, "immutability", "needs days"),
        ("    immutability: {mode: append-only, days: 3}\n", S3_NEAR, "days: 3", "no retention"),
        ("    immutability: {mode: worm, days: 3}\n", S3_NEAR, "mode: worm", "compliance"),
    ],
)
def test_bad_storage_and_immutability(extra: str, url: str, needle: str, part: str) -> None:
    assert_error(with_near(extra, url), needle, part)


def test_append_only_needs_no_s3() -> None:
    config = parse_config(
        with_near("    immutability: {mode: append-only}\n", "    url: /srv/near\n"), FILE
    )
    near = config.center("near")
    assert near.immutability is not None and near.immutability.mode == "append-only"
