"""The `picsift compare` leaderboard page: the majority baseline, an interval per candidate, each one's budget, and
no winner named on a difference the paired test cannot tell from noise."""

from __future__ import annotations

import pytest
from scipy.stats import binomtest

from picsift.compare import compare_to_best, leaderboard_figure, paired_p_value, render_html
from support.report import COMPARE_N, leaderboard_row, parse_html


def test_paired_test_counts_only_the_images_one_candidate_got_right() -> None:
    a = {i: i < 100 for i in range(COMPARE_N)}
    b = {i: i < 92 or 100 <= i < 101 for i in range(COMPARE_N)}  # a alone: 8 images, b alone: 1
    assert paired_p_value(a, b) == pytest.approx(binomtest(1, 9, 0.5).pvalue) == pytest.approx(0.0390625)
    assert paired_p_value(a, dict(a)) == 1.0


def test_no_winner_is_named_on_a_difference_inside_the_noise() -> None:
    best = leaderboard_row("fastcnn", set(range(120)))  # 0.80
    close = leaderboard_row("svm:hog", set(range(5, 123)) - {60})  # 0.78: differs from the best on 9 images only
    far = leaderboard_row("knn:hog", set(range(60)))  # 0.40
    rows = [best, close, far]
    verdict = compare_to_best(rows)
    assert verdict["winner"] is None and verdict["tied_with_best"] == ["svm:hog"]
    assert verdict["verdict"].startswith("No clear winner: fastcnn scored highest, but svm:hog is within the noise")
    assert close["p_vs_best"] >= 0.05 > far["p_vs_best"]
    # 0.40 with an interval of about 0.32-0.48 is not above always answering "bees" (0.54)
    assert verdict["not_above_baseline"] == ["knn:hog"]
    assert verdict["verdict"].endswith("knn:hog does not beat the majority-class baseline (0.540) beyond the noise "
                                       "(95% interval reaching down to it).")  # fmt: skip
    clear = compare_to_best([leaderboard_row("fastcnn", set(range(120))), leaderboard_row("knn:hog", set(range(60)))])
    assert clear["winner"] == "fastcnn" and clear["verdict"].startswith("fastcnn is best")


def test_page_shows_baseline_intervals_budgets_and_the_verdict_in_a_non_wrapping_table() -> None:
    rows = [
        leaderboard_row("fastcnn", set(range(120)), budget_min=1.5, epochs=37),
        leaderboard_row("svm:hog", set(range(5, 123)) - {60}, features="hog"),
    ]
    meta = {"n_eval": COMPARE_N, "split": "test", "seed": 0, "time_budget_min": 2.0, "created_at": "2026-12-01T10:10:10",
            "majority_baseline": {"class": "bees", "accuracy": 0.54}, **compare_to_best(rows)}  # fmt: skip
    doc = parse_html(render_html(rows, meta))
    assert doc.by_id("verdict").text.startswith("No clear winner")
    table = doc.by_id("leaderboard")
    head = [th.text for th in table.find_all("th")]
    assert head == ["#", "candidate", "accuracy", "95% CI", "macro F1", "vs best", "budget", "epochs", "train s",
                    "predict ms/img", "size"]  # fmt: skip
    first, second = (
        dict(zip(head, (td.text for td in tr.find_all("td")), strict=True)) for tr in table.find_all("tr")[1:]
    )
    lo, hi = rows[0]["accuracy_ci95"]
    assert first["95% CI"] == f"{lo:.3f}–{hi:.3f}" and first["vs best"] == "best"
    assert first["budget"] == "90 s" and first["epochs"] == "37"
    assert second["budget"] == "n/a (classical)" and second["epochs"] == "–" and second["vs best"].endswith("(noise)")
    assert "compare-fastcnn" not in table.text  # run ids live in the name's tooltip, not a wide column
    assert "majority-class baseline 0.540 (always bees)" in doc.text
    style = doc.find("style").text
    assert "white-space:\nnowrap" in style or "white-space:nowrap" in style
    fig = leaderboard_figure(rows, meta)
    acc_ax = fig.axes[0]
    assert any(list(line.get_ydata()) == [0.54, 0.54] for line in acc_ax.lines)  # the baseline line
    from matplotlib.container import ErrorbarContainer

    bars = next(c for c in acc_ax.containers if isinstance(c, ErrorbarContainer))
    segments = bars.lines[2][0].get_segments()  # one vertical interval per accuracy bar
    assert [(round(seg[0][1], 4), round(seg[1][1], 4)) for seg in segments] == [
        (round(r["accuracy_ci95"][0], 4), round(r["accuracy_ci95"][1], 4)) for r in rows
    ]
