"""Figures read as the issue asks: titles, labels and legend texts from the figure objects; no text clipped."""
import numpy as np
import pandas as pd
import pytest
from matplotlib.text import Text

from reporting.distributions import max_score_figure
from reporting.false_positives import FalsePositiveCandidates, false_positive_figure
from reporting.held_out_fpr import held_out_figure
from reporting.roc import _roc, attack_title, roc_figure
from reporting.tradeoff import SINGLE_RUN_NOTE, TradeoffPoint, tradeoff_figure


def texts_inside(figure) -> list[str]:
    """Every visible text of ``figure``; asserts each lies inside the figure (nothing clipped)."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    width, height = figure.bbox.width, figure.bbox.height
    tight = figure.get_tightbbox(renderer)  # inches: everything drawn
    assert tight.x0 >= -0.01 and tight.y0 >= -0.01 and tight.x1 <= figure.get_figwidth() + 0.01 \
        and tight.y1 <= figure.get_figheight() + 0.01, f"drawn artists {tight} exceed the figure"
    undrawn = set()  # tick labels outside the axis limits are not drawn
    for axes in figure.axes:
        for axis in (axes.xaxis, axes.yaxis):
            low, high = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not low - 1e-9 <= tick.get_loc() <= high + 1e-9:
                    undrawn.update({id(tick.label1), id(tick.label2)})
    seen = []
    for text in figure.findobj(Text):
        if id(text) in undrawn or not text.get_visible() or not text.get_text().strip():
            continue
        box = text.get_window_extent(renderer)
        assert box.x0 >= -1 and box.y0 >= -1 and box.x1 <= width + 1 and box.y1 <= height + 1, \
            f"text {text.get_text()!r} is clipped: {box} outside {width}x{height}"
        seen.append(text.get_text())
    return seen


def legend_texts(axes_or_figure) -> list[str]:
    legends = axes_or_figure.legends if hasattr(axes_or_figure, "legends") and axes_or_figure.legends else \
        [axes_or_figure.get_legend()]
    return [t.get_text() for legend in legends if legend for t in legend.get_texts()]


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_roc_title_names_the_attack_once_and_legend_gives_auroc_and_tpr(rng):
    curves = {name: _roc("Threshold Attack", name, rng.normal(0.5, 1, 200), rng.normal(0, 1, 200))
              for name in ("Original", "No Normalization", "Photo Patches")}
    title = attack_title("Threshold Attack")
    assert title == "Threshold attack" and attack_title("Threshold") == title
    figure = roc_figure(curves, f"ROC of the {title}")
    assert figure.get_suptitle().lower().count("attack") == 1
    linear, loglog = figure.axes
    assert (linear.get_xscale(), loglog.get_xscale(), loglog.get_yscale()) == ("linear", "log", "log")
    for axes in (linear, loglog):
        assert axes.get_xlabel() == "false-positive rate" and axes.get_ylabel() == "true-positive rate"
    labels = legend_texts(figure)
    assert any(label.startswith("Original: AUROC ") and "TPR@1%FPR " in label for label in labels)
    assert len(labels) == len(curves) + 1 and labels[-1] == "chance"
    texts = texts_inside(figure)
    renderer = figure.canvas.get_renderer()
    legend_box = figure.legends[0].get_window_extent(renderer)
    for axes in (linear, loglog):   # below the curves and below the panels' x labels
        assert legend_box.y1 <= axes.xaxis.label.get_window_extent(renderer).y0
        assert axes.xaxis.label.get_window_extent(renderer).y1 <= axes.get_window_extent(renderer).y0
    assert "linear axes" in texts


def test_roc_figure_redrawn_for_another_attack_equals_a_new_one(tmp_path, rng):
    """plot_roc_curves redraws one figure per attack; each file must be what a new figure gives."""
    from PIL import Image
    from reporting.roc import plot_roc_curves

    members = rng.normal(0.5, 1, 100)
    sets = {"A": {"Original": (members, rng.normal(0, 1, 80)), "Empty": (members, np.array([]))},
            "B": {"Original": (rng.normal(2, 1, 100), rng.normal(0, 1, 80)), "Empty": (members, np.array([]))}}
    together = plot_roc_curves(sets, tmp_path / "together")
    alone = plot_roc_curves({"B": sets["B"]}, tmp_path / "alone")
    assert [p.name for p in together] == ["roc_A.png", "roc_B.png"]
    assert np.array_equal(np.asarray(Image.open(together[1])), np.asarray(Image.open(alone[0])))
    assert not np.array_equal(np.asarray(Image.open(together[0])), np.asarray(Image.open(together[1])))


def test_held_out_figure_title_labels_zero_and_cannot_be_judged(rng):
    index = pd.Index(["Members", "Held-out", "Original", "Scaled"], name="set")
    table = pd.DataFrame({"A FPR@1%HeldOutFPR": [0.3, 0.01, 0.0, 0.6], "A FPR@0.1%HeldOutFPR": [0.2, 0.0, 0.0, 0.5],
                          "B FPR@1%HeldOutFPR": [0.0, 0.0, 0.0, 0.0], "B FPR@0.1%HeldOutFPR": [0.0, 0.0, 0.0, 0.0]},
                         index=index)
    figure = held_out_figure(table)
    axes = figure.axes[0]
    assert "fooled" in figure.get_suptitle()
    assert axes.get_ylabel() == "FPR at the held-out threshold"
    labels = legend_texts(figure)
    assert "1% (nominal held-out FPR)" in labels and "FPR exactly 0" in labels
    assert "B: cannot be judged (no bar)" in labels and "A" in labels
    texts = texts_inside(figure)
    assert "Scaled" in texts


def test_score_distributions_show_the_share_at_one(rng):
    members = np.minimum(1.0, 1 - rng.exponential(1e-3, 100))
    members[:30] = 1.0
    figure = max_score_figure(members, {"Original": rng.uniform(0.5, 1, 80), "Scaled": np.ones(50)})
    titles = [a.get_title() for a in figure.axes if a.get_visible()]
    assert "Original (n=80)\nat exactly 1.0: members 30%, set 0%" in titles
    assert "Scaled (n=50)\nat exactly 1.0: members 30%, set 100%" in titles
    ticks = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    assert ticks[-1] == "=1.0" and "0.99-0.999" in ticks
    assert legend_texts(figure) == ["members", "non-members of the set"]
    texts_inside(figure)


def test_false_positive_grid_names_its_attack(rng):
    candidates = {"Scaled": FalsePositiveCandidates(images=rng.uniform(0, 1, (5, 1, 8, 8)),
                                                    max_probs=rng.uniform(0.9, 1, 5),
                                                    predicted_member=np.array([True, False, True, True, False]),
                                                    predicted_class=np.arange(5), class_names=list("abcde"))}
    figure = false_positive_figure(candidates, per_set=4, attack="Threshold")
    assert figure.get_suptitle().startswith("Threshold attack:")
    texts = texts_inside(figure)
    assert "Scaled\n3 / 5 false positives" in texts
    chosen = candidates["Scaled"].top_false_positives(4)
    assert [t for t in texts if t[0] in "abcde" and "\n0." in t] == \
        [f"{'abcde'[i]}\n{candidates['Scaled'].max_probs[i]:.4f}" for i in chosen]  # one title per tile


def test_show_tiles_puts_each_tile_where_it_says(rng):
    from matplotlib.image import AxesImage
    from reporting.figures import new_figure, show_tiles

    tiles = [rng.uniform(0, 1, (4, 5)), None, rng.uniform(0, 1, (4, 5, 3))]
    axes = new_figure(3, 2, layout=None).add_subplot()
    assert show_tiles(axes, tiles, columns=2, gap=1) == (4, 5)
    canvas = axes.findobj(AxesImage)[0].get_array()
    assert canvas.shape == (9, 11, 4)
    assert np.allclose(canvas[:4, :5, 0], tiles[0]) and np.allclose(canvas[5:9, :5, :3], tiles[2])
    assert (canvas[:, 5, 3] == 0).all() and (canvas[:4, 6:, 3] == 0).all()   # the gap and the None tile
    with pytest.raises(ValueError, match="differ in size"):
        show_tiles(axes, [np.zeros((4, 5)), np.zeros((5, 5))], columns=2)


def test_tradeoff_with_one_run_says_what_it_needs():
    figure = tradeoff_figure([TradeoffPoint("s_", "small_cnn_digits", "baseline", 0.05, 0.4, 6)])
    axes = figure.axes[0]
    assert axes.get_title() == "Calibration vs. false positives"
    assert SINGLE_RUN_NOTE in texts_inside(figure)
    assert "baseline" in [t.get_text() for t in axes.texts]
