"""Days that drift: one file per day, reproducible per (seed, day); new IDs at the set share;
the base click rate and the planted effects moving as configured; the new-value mask."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest

from unified_embedding.metrics.exact import roc_auc
from unified_embedding.synthetic import (
    CATEGORY_FIELDS,
    INTEGER_FIELDS,
    DriftConfig,
    SyntheticConfig,
    birth_days,
    category_ids,
    day_model,
    day_path,
    generate,
    generate_day,
    new_id_range,
    new_value_mask,
    planted_model,
    rows_with_new_values,
    write_days,
    write_tsv,
)
from unified_embedding.synthetic import cli as synthetic_cli
from unified_embedding.synthetic.days import DayModel
from unified_embedding.synthetic.drift import drifting_fields, last_day

CONFIG = SyntheticConfig(seed=3, weighted_top_k=50)
ROWS = 20_000
NO_DRIFT = DriftConfig(new_id_share=0.0, ctr_drift=0.0, effect_rotation=0.0)


def _cells(path: Path) -> np.ndarray:
    """(n, 26) C cells of a written file."""
    lines = gzip.decompress(path.read_bytes()).decode("ascii").splitlines()
    return np.array([line.split("\t")[14:] for line in lines])


def test_days_are_files_by_day_reproducible_from_seed_and_day(tmp_path: Path) -> None:
    reports = write_days(tmp_path / "a", 3, 3_000, CONFIG, chunk_rows=1_000)
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["day-01.tsv.gz", "day-02.tsv.gz", "day-03.tsv.gz"]  # no partial file left
    assert [r.path for r in reports] == [str(day_path(tmp_path / "a", d, 3)) for d in (1, 2, 3)]
    write_days(tmp_path / "b", 4, 3_000, CONFIG)  # more days, other chunks: same days 1..3
    day_model.cache_clear()
    planted_model.cache_clear()
    for day in (1, 2, 3):
        written = (tmp_path / "a" / f"day-0{day}.tsv.gz").read_bytes()
        assert written == (tmp_path / "b" / f"day-0{day}.tsv.gz").read_bytes()
        assert gzip.decompress(written) == generate_day(3_000, day, CONFIG).to_tsv_bytes()
    days = [generate_day(3_000, day, CONFIG).to_tsv_bytes() for day in (1, 2, 3)]
    assert len(set(days)) == 3
    other_seed = SyntheticConfig(seed=4, weighted_top_k=50)
    assert generate_day(3_000, 2, other_seed).to_tsv_bytes() != days[1]
    assert day_path(tmp_path, 7, 120).name == "day-007.tsv.gz"  # sorts by day


def test_day_one_is_todays_output_whatever_the_drift(tmp_path: Path) -> None:
    drift = DriftConfig(new_id_share=0.15, ctr_drift=1.0, effect_rotation=1.0)
    write_days(tmp_path / "days", 2, 5_000, CONFIG, drift)
    write_tsv(tmp_path / "today.tsv.gz", 5_000, CONFIG)
    day_one = (tmp_path / "days" / "day-01.tsv.gz").read_bytes()
    assert day_one == (tmp_path / "today.tsv.gz").read_bytes()
    assert day_model(CONFIG, drift, 1).model is planted_model(CONFIG)


def test_without_drift_every_day_draws_from_the_day_one_model() -> None:
    first = planted_model(CONFIG)
    for day in (2, 5):
        batch = generate_day(ROWS, day, CONFIG, NO_DRIFT)
        assert not new_value_mask(batch.categories, CONFIG).any()
        np.testing.assert_array_equal(
            batch.probabilities, first.probabilities(batch.integers, batch.categories)
        )
    assert (
        generate_day(ROWS, 2, CONFIG, NO_DRIFT).to_tsv_bytes()
        != generate(ROWS, CONFIG).to_tsv_bytes()
    )


def test_new_ids_take_the_set_share_of_each_day() -> None:
    drift = DriftConfig(new_id_share=0.1, new_id_retention=0.5, ctr_drift=0.0)
    fields = drifting_fields(CONFIG, drift)
    assert [CATEGORY_FIELDS[f] for f in fields] == [f"C{i}" for i in range(21, 27)]
    seen: list[set[int]] = [set() for _ in CATEGORY_FIELDS]
    for day in (1, 2, 3, 4):
        categories = generate_day(ROWS, day, CONFIG, drift).categories
        present = categories[:, fields] >= 0
        born = birth_days(categories, CONFIG, drift)[:, fields]
        for days_before in range(day - 1):  # born today, yesterday, ...
            share = np.count_nonzero(born == day - days_before) / present.sum()
            assert share == pytest.approx(0.1 * 0.5**days_before, abs=0.006), (day, days_before)
        for f in range(len(CATEGORY_FIELDS)):
            values = categories[categories[:, f] >= 0, f]
            if f not in fields:
                assert values.max() < CONFIG.cardinalities[f]  # no new IDs there
            else:
                today = new_id_range(CONFIG, drift, CATEGORY_FIELDS[f], day)
                born_today = (values >= today.start) & (values < today.stop)
                assert not np.isin(values[born_today], list(seen[f])).any()  # never seen before
                tomorrow = new_id_range(CONFIG, drift, CATEGORY_FIELDS[f], day + 1)
                assert values.max() < tomorrow.start  # nothing born on a later day
            seen[f].update(values.tolist())


def test_base_click_rate_moves_as_configured() -> None:
    drift = DriftConfig(
        new_id_share=0.0, ctr_drift=0.2, ctr_jump_day=3, ctr_jump=1.0, effect_rotation=0.0
    )
    first = planted_model(CONFIG)
    shifts = {1: 0.0, 2: 0.2, 3: 1.4, 4: 1.6}
    rates = []
    for day, shift in shifts.items():
        model = day_model(CONFIG, drift, day).model
        assert model.bias == pytest.approx(first.bias + shift, abs=1e-12)
        batch = generate_day(ROWS, day, CONFIG, drift)
        expected = 1.0 / (1.0 + np.exp(-(first.logits(batch.integers, batch.categories) + shift)))
        np.testing.assert_allclose(batch.probabilities, expected, rtol=1e-12)
        assert batch.labels.mean() == pytest.approx(expected.mean(), abs=0.01)
        rates.append(batch.labels.mean())
    assert rates == sorted(rates) and rates[2] - rates[1] > 0.15  # the jump on day 3


def _weights(model: DayModel) -> np.ndarray:
    """Every day-1 planted weight of a day's model, flattened (births left out)."""
    first = planted_model(model.config)
    parts = [
        w[: len(w0) - 1]
        for w, w0 in zip(model.model.category_weights, first.category_weights, strict=True)
    ]
    parts.append(model.model.integer_weights)
    for field, latent in model.model.latents.items():
        rows = latent.shape[0] if field in INTEGER_FIELDS else first.latents[field].shape[0] - 1
        parts.append(latent[:rows].ravel())
    return np.concatenate(parts)


def test_planted_effects_rotate_away_from_day_one() -> None:
    angle = 0.3
    drift = DriftConfig(effect_rotation=angle)
    config = SyntheticConfig(seed=5)  # 200 weighted values per field: ~10,000 weights
    day_one = _weights(day_model(config, drift, 1))
    correlations = []
    for day in (2, 3, 5, 8):
        weights = _weights(day_model(config, drift, day))
        assert weights.std() == pytest.approx(day_one.std(), rel=0.05)  # same distribution
        correlation = np.corrcoef(day_one, weights)[0, 1]
        assert correlation == pytest.approx(math.cos(angle) ** (day - 1), abs=0.03), day
        correlations.append(correlation)
    assert correlations == sorted(correlations, reverse=True)
    unturned = DriftConfig(effect_rotation=0.0)
    np.testing.assert_array_equal(_weights(day_model(config, unturned, 4)), day_one)


def test_new_values_carry_effects_of_their_own() -> None:
    drift = DriftConfig(ctr_drift=0.0, effect_rotation=0.0)
    day = day_model(CONFIG, drift, 3)
    f = drifting_fields(CONFIG, drift)[-1]
    born = new_id_range(CONFIG, drift, CATEGORY_FIELDS[f], 3)
    weights = day.model.category_weights[f]
    assert weights.shape == (CONFIG.top_k[f] + 2 * day.weighted_births + 1,) and weights[-1] == 0
    batch = generate(500, CONFIG)
    integers, categories = batch.integers, batch.categories.copy()
    categories[:, f] = born.start  # the day's most frequent new value, weighted
    with_new = day.logits(integers, categories)
    categories[:, f] = born.start + day.weighted_births  # born the same day, unweighted
    unweighted = day.logits(integers, categories)
    categories[:, f] = -1
    np.testing.assert_array_equal(unweighted, day.logits(integers, categories))
    assert np.all(with_new != unweighted)
    later = new_id_range(CONFIG, drift, CATEGORY_FIELDS[f], 4).start  # not born yet on day 3
    categories[:, f] = later
    np.testing.assert_array_equal(unweighted, day.logits(integers, categories))


def test_new_value_mask_matches_what_day_one_holds(tmp_path: Path) -> None:
    drift = DriftConfig(new_id_share=0.1)
    write_days(tmp_path, 3, 5_000, CONFIG, drift)
    day_one = _cells(tmp_path / "day-01.tsv.gz")
    cells = _cells(tmp_path / "day-03.tsv.gz")
    ids = category_ids(cells)
    batch = generate_day(5_000, 3, CONFIG, drift)
    np.testing.assert_array_equal(ids, batch.categories)  # the text maps back to the ids
    mask = new_value_mask(ids, CONFIG)
    np.testing.assert_array_equal(mask, birth_days(ids, CONFIG, drift) > 1)
    np.testing.assert_array_equal(rows_with_new_values(ids, CONFIG), mask.any(axis=1))
    assert 0.1 < mask.any(axis=1).mean() < 0.9
    for f in range(len(CATEGORY_FIELDS)):  # oracle: the strings day 1's file holds
        on_day_one = np.isin(cells[:, f], day_one[:, f])
        assert not np.any(mask[:, f] & on_day_one)
        frequent = (ids[:, f] >= 0) & (ids[:, f] < 20)  # the 20 most frequent day-1 values
        assert np.all(on_day_one[frequent])


def test_reports_give_each_days_ceiling_and_shares(tmp_path: Path) -> None:
    drift = DriftConfig(new_id_share=0.1, ctr_drift=0.5)
    reports = write_days(tmp_path, 3, ROWS, CONFIG, drift)
    for report in reports:
        batch = generate_day(ROWS, report.day, CONFIG, drift)
        assert report.generated.planted_auc == roc_auc(batch.labels, batch.probabilities)
        assert report.generated.label_rate == batch.labels.mean()
        assert report.base_logit == day_model(CONFIG, drift, report.day).model.bias
        assert report.rows_with_new_values == rows_with_new_values(batch.categories, CONFIG).mean()
    assert reports[0].new_id_share == 0.0
    assert [r.new_id_share for r in reports[1:]] == pytest.approx([0.1, 0.1], abs=0.006)
    assert set(reports[0].to_dict()) == {
        "day",
        "path",
        "base_logit",
        "new_id_share",
        "rows_with_new_values",
        "rows",
        "label_rate",
        "planted_auc",
        "seconds",
        "rows_per_second",
    }


def test_cli_writes_a_line_per_day_and_refuses_drift_without_days(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--rows", "1000", "--out", str(tmp_path / "d"), "--days", "2", "--seed", "3"]
    assert synthetic_cli.main([*argv, "--ctr-jump-day", "2", "--ctr-jump", "0.5"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["day"] for line in lines] == [1, 2]
    shift = DriftConfig().ctr_drift + 0.5  # a day's drift (the default) and the jump
    assert lines[1]["base_logit"] == pytest.approx(lines[0]["base_logit"] + shift)
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["day-01.tsv.gz", "day-02.tsv.gz"]
    with pytest.raises(ValueError, match="`--new-id-share` needs `--days`"):
        synthetic_cli.main(["--rows", "10", "--out", str(tmp_path / "x"), "--new-id-share", "0.1"])
    with pytest.raises(ValueError, match="`days` should be >= 1"):
        synthetic_cli.main(["--rows", "10", "--out", str(tmp_path / "x"), "--days", "0"])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("new_id_share", 1.0),
        ("new_id_share", 0.5),  # with the default retention 0.8, shares would pass 1
        ("new_id_retention", 1.0),
        ("new_ids_per_day", 0),
        ("ctr_jump_day", 1),
        ("ctr_drift", math.inf),
        ("effect_rotation", -0.1),
    ],
)
def test_drift_config_rejects_bad_values(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"`{field}` should .* Received: `{field}="):
        DriftConfig(**{field: value})  # type: ignore[arg-type]


def test_days_past_the_id_space_are_refused() -> None:
    drift = DriftConfig(new_ids_per_day=2**31)
    assert last_day(CONFIG, drift) == 2
    with pytest.raises(ValueError, match=r"`day` should be in \[1, 2\]. Received: `day=3`"):
        generate_day(10, 3, CONFIG, drift)
