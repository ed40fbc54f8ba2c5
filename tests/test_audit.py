"""The audit of a user's scores, model or data: known answers, null tests, per-sample scores, bad input."""
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

from membership_audit import audit_scores, balanced_membership, held_out_fpr_table, score_metrics
from membership_audit.cli import main
from membership_audit.user_model import build_user_model, load_user_checkpoint

CLASSES = 4


def probs_like(rng, n, peak):
    """Rows whose true-class probability is ``peak``, the rest spread evenly."""
    labels = rng.integers(0, CLASSES, n)
    probs = np.full((n, CLASSES), (1 - peak) / (CLASSES - 1), dtype=np.float32)
    probs[np.arange(n), labels] = peak
    return probs / probs.sum(axis=1, keepdims=True), labels


def dirichlet_probs(rng, n):
    probs = rng.dirichlet(np.ones(CLASSES) * 0.5, n).astype(np.float64)
    return probs, rng.integers(0, CLASSES, n)


def arrays_from(members, non_members, shadow_members, shadow_non_members, **extra):
    arrays = {"member_probs": members[0], "member_labels": members[1], "non_member_probs": non_members[0],
              "non_member_labels": non_members[1], "shadow_member_probs": shadow_members[0],
              "shadow_member_labels": shadow_members[1], "shadow_non_member_probs": shadow_non_members[0],
              "shadow_non_member_labels": shadow_non_members[1]}
    return {**arrays, **extra}


def test_score_metrics_known_answers():
    separable = score_metrics(np.linspace(1, 2, 50), np.linspace(-2, -1, 50))
    assert separable.auroc == 1.0 and separable.fpr == 0.0 and separable.recall == 1.0
    rng = np.random.default_rng(0)
    null = score_metrics(rng.normal(size=5000), rng.normal(size=5000))
    assert abs(null.auroc - 0.5) < 0.05


def test_separable_scores_give_auroc_1_and_fpr_0():
    rng = np.random.default_rng(1)
    result = audit_scores(arrays_from(probs_like(rng, 200, 0.99), probs_like(rng, 200, 0.4),
                                      probs_like(rng, 200, 0.99), probs_like(rng, 200, 0.4)),
                          attacks=("threshold", "entropy", "loss"))
    for attack in ("Threshold", "Entropy", "LOSS"):
        assert result.attack_table.loc["Original", f"{attack} Attack AUROC"] == 1.0
        assert result.attack_table.loc["Original", f"{attack} Attack FPR"] == 0.0


def test_identical_distributions_give_auroc_near_half():
    rng = np.random.default_rng(2)
    result = audit_scores(arrays_from(*(dirichlet_probs(rng, 5000) for _ in range(4))),
                          attacks=("threshold", "entropy", "loss", "modified_entropy"))
    aurocs = result.attack_table.filter(like="AUROC").loc["Original"]
    assert len(aurocs) == 4 and (aurocs - 0.5).abs().max() < 0.05


def reference_arrays(rng, members, non_members, k=8, gap=0.0):
    """Logits of K reference models; IN rows get ``gap`` added to their true-class logit."""
    labels = np.r_[members, non_members]
    reference_in = balanced_membership(k, len(labels), seed=3)
    logits = rng.normal(size=(k, len(labels), CLASSES))
    logits[:, np.arange(len(labels)), labels] += gap * reference_in
    return logits, reference_in


def test_lira_null_and_separable_through_the_scores_route():
    rng = np.random.default_rng(4)
    m, n = 2000, 2000
    member_labels, non_member_labels = rng.integers(0, CLASSES, m), rng.integers(0, CLASSES, n)
    for gap, check in ((0.0, lambda auroc: abs(auroc - 0.5) < 0.05), (6.0, lambda auroc: auroc > 0.99)):
        refs, reference_in = reference_arrays(rng, member_labels, non_member_labels, gap=gap)
        target = rng.normal(size=(m + n, CLASSES))
        target[np.arange(m), member_labels] += gap
        result = audit_scores({"member_logits": target[:m], "member_labels": member_labels,
                               "non_member_logits": target[m:], "non_member_labels": non_member_labels,
                               "reference_logits": refs, "reference_in": reference_in},
                              attacks=("lira", "lira_offline", "threshold"))
        assert check(result.attack_table.loc["Original", "LiRA Attack AUROC"]), gap
        # without a shadow model or known non-members the Threshold attack still gives its AUROC, not its FPR
        assert not result.skipped_attacks and np.isnan(result.attack_table.loc["Original", "Threshold Attack FPR"])
        assert list(result.thresholds["threshold source"]) == ["none"]


def test_sample_scores_agree_with_the_table():
    rng = np.random.default_rng(5)
    extra = {"set_Noise_probs": dirichlet_probs(rng, 80)[0]}
    result = audit_scores(arrays_from(probs_like(rng, 100, 0.9), dirichlet_probs(rng, 100),
                                      probs_like(rng, 100, 0.9), dirichlet_probs(rng, 100), **extra),
                          attacks=("threshold", "shokri"))
    samples = result.sample_scores
    assert list(samples["set"].unique()) == ["Members", "Original", "Noise"]
    assert (samples[samples.set == "Noise"]["label"] == -1).all()
    for attack in ("Threshold", "Shokri"):
        decided = samples.groupby("set")[f"{attack} decision"].mean()
        assert decided["Members"] == pytest.approx(result.attack_table.loc["Original", f"{attack} Attack Recall"])
        for row in ("Original", "Noise"):
            assert decided[row] == pytest.approx(result.attack_table.loc[row, f"{attack} Attack FPR"])


def test_held_out_table_is_public_and_written(tmp_path):
    rng = np.random.default_rng(6)
    result = audit_scores(arrays_from(probs_like(rng, 100, 0.9), dirichlet_probs(rng, 100),
                                      probs_like(rng, 100, 0.9), dirichlet_probs(rng, 100),
                                      held_out_probs=dirichlet_probs(rng, 300)[0],
                                      held_out_labels=rng.integers(0, CLASSES, 300)),
                          attacks=("threshold",))
    assert result.held_out_table.loc["Held-out", "Threshold FPR@1%HeldOutFPR"] <= 0.01
    files = result.write(tmp_path, name="mine")
    assert {"attack_results", "held_out_fpr_results", "sample_scores", "intervals", "report", "manifest"} <= set(files)
    assert pd.read_csv(files["sample_scores"]).shape[0] == 200
    intervals = pd.read_csv(files["intervals"])
    assert set(intervals["set"]) == {"Original", "Members"}     # Members: TPR at the held-out thresholds
    assert (intervals["low"] <= intervals["estimate"] + 1e-12).all() and (intervals["estimate"] <= intervals["high"] + 1e-12).all()
    report = files["report"].read_text()
    for sentence in result.summary():     # the report opens with the summary a preset run's has
        assert sentence in report
    table = held_out_fpr_table({"A": {"Held-out": np.arange(100.0), "Other": np.full(10, 1000.0)}})
    assert table.loc["Other", "A FPR@1%HeldOutFPR"] == 1.0


def test_balanced_membership_is_half_in():
    matrix = balanced_membership(8, 500, seed=0)
    assert matrix.shape == (8, 500) and (matrix.sum(axis=0) == 4).all()


# --- bad input: one line on stderr, exit 2 -------------------------------------------------------

def run_cli(argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


def good_arrays(rng):
    return arrays_from(probs_like(rng, 20, 0.9), probs_like(rng, 20, 0.5), probs_like(rng, 20, 0.9),
                       probs_like(rng, 20, 0.5))


@pytest.mark.parametrize("change, message", [
    (lambda a: a.pop("member_labels"), "missing array member_labels"),
    (lambda a: a.update(members_probs=a.pop("member_probs")), "unknown array(s) members_probs"),
    (lambda a: a.update(non_member_labels=a["non_member_labels"][:5]), "non_member_labels: has 5 entries"),
    (lambda a: a.update(member_probs=a["member_probs"] * 2), "member_probs: row 0 sums to 2"),
    (lambda a: a.update(set_SVHN_probs=np.ones((3, 5)) / 5), "set_SVHN_probs: has 5 classes"),
    (lambda a: a.update(reference_logits=np.zeros((4, 40, CLASSES))), "missing array reference_in"),
    (lambda a: a.update(reference_logits=np.zeros((4, 39, CLASSES)), reference_in=np.ones((4, 39), bool)),
     "reference_logits must have shape"),
])
def test_bad_scores_files(tmp_path, capsys, change, message):
    arrays = good_arrays(np.random.default_rng(7))
    change(arrays)
    path = tmp_path / "scores.npz"
    np.savez(path, **arrays)
    code, err = run_cli(["--scores", str(path), "--results_dir", str(tmp_path / "out")], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and message in err and str(path) in err, err


def test_missing_scores_file(tmp_path, capsys):
    code, err = run_cli(["--scores", str(tmp_path / "nope.npz")], capsys)
    assert code == 2 and "--scores" in err and "no such file" in err


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        return self.head(self.conv(x).mean(dim=(2, 3)))


def make_tiny():
    return TinyNet()


def make_not_a_module():
    return "a string"


def write_folder(root, n=3, classes=2, size=8):
    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"c{c}").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / f"c{c}" / f"{i}.png")
    return root


def model_argv(tmp_path, **flags):
    folder = write_folder(tmp_path / "images")
    torch.save(TinyNet().state_dict(), tmp_path / "tiny.pt")
    argv = {"--model": "tests.test_audit:make_tiny", "--checkpoint": str(tmp_path / "tiny.pt"),
            "--member_data": str(folder), "--non_member_data": str(folder), "--image_size": "8",
            "--results_dir": str(tmp_path / "out"), **flags}
    return [part for key, value in argv.items() for part in (key, value)]


@pytest.mark.parametrize("flags, message", [
    ({"--model": "no_such_package.models:make"}, "--model 'no_such_package.models:make': cannot import"),
    ({"--model": "tests.test_audit:nothing_here"}, "has no callable 'nothing_here'"),
    ({"--model": "tests.test_audit:make_not_a_module"}, "returned a str, not a torch.nn.Module"),
    ({"--model": "tests.test_audit"}, "expected package.module:name"),
    ({"--member_data": "EMPTY"}, "no images found"),
    ({"--non_member_data": "BROKEN"}, "cannot be read"),
    ({"--checkpoint": "WRONG"}, "keys do not fit the model: 3 missing, 1 unexpected"),
    ({"--reference_models": "4"}, "--reference_models needs --train_fn"),
    ({"--ood_data": "no_equals_sign"}, "expected NAME=PATH"),
])
def test_bad_model_route_inputs(tmp_path, capsys, flags, message):
    (tmp_path / "empty").mkdir()
    broken = write_folder(tmp_path / "broken", n=1)
    (broken / "c0" / "0.png").write_bytes(b"not a png")
    torch.save({"conv.weight": torch.zeros(4, 3, 3, 3), "other": torch.zeros(1)}, tmp_path / "wrong.pt")
    replace = {"EMPTY": str(tmp_path / "empty"), "BROKEN": str(broken), "WRONG": str(tmp_path / "wrong.pt")}
    flags = {key: replace.get(value, value) for key, value in flags.items()}
    code, err = run_cli(model_argv(tmp_path, **flags), capsys)
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err


def test_route_flags_conflict(tmp_path, capsys):
    code, err = run_cli(["--results_dir", str(tmp_path)], capsys)
    assert code == 2 and "give either --scores" in err
    code, err = run_cli(["--scores", "x.npz", "--member_data", "folder"], capsys)
    assert code == 2 and "drop --member_data" in err


def test_checkpoint_shape_mismatch_names_the_tensor(tmp_path):
    state = TinyNet().state_dict()
    state["head.weight"] = torch.zeros(5, 4)
    torch.save(state, tmp_path / "shape.pt")
    with pytest.raises(ValueError, match="1 tensor\\(s\\) have other shapes.*head.weight"):
        load_user_checkpoint(build_user_model(make_tiny), tmp_path / "shape.pt")


def test_model_route_writes_the_paper_layout(tmp_path, capsys):
    argv = model_argv(tmp_path, **{"--shadow_checkpoint": str(tmp_path / "tiny.pt"),
                                   "--shadow_member_data": str(tmp_path / "images"),
                                   "--shadow_non_member_data": str(tmp_path / "images"),
                                   "--attacks": "threshold", "--name": "tiny"})
    assert main(argv + ["--no_figures"]) == 0
    table = pd.read_csv(tmp_path / "out" / "tiny_attack_results.csv", index_col=0)
    assert list(table.index) == ["Original", "Permuted", "Scaled", "No Normalization"]
    assert table.loc["Original", "Threshold Attack AUROC"] == 0.5     # members and non-members are the same images
    samples = pd.read_csv(tmp_path / "out" / "tiny_sample_scores.csv")
    assert len(samples) == 6 * 5 and set(samples["member"]) == {True, False}


def test_ood_data_by_data_set_name_is_named_by_its_declaration():
    from membership_audit.cli import parse_named

    assert parse_named(["svhn", "stl10:test", "Mine=photos"]) == {"SVHN": "svhn", "STL-10": "stl10:test",
                                                                  "Mine": "photos"}
    with pytest.raises(ValueError, match="SVHN.*given twice"):
        parse_named(["svhn", "SVHN=photos"])


def test_cli_prints_the_summary_and_with_verbose_the_table(tmp_path, capsys):
    np.savez(tmp_path / "scores.npz", **good_arrays(np.random.default_rng(0)))
    argv = ["--scores", str(tmp_path / "scores.npz"), "--results_dir", str(tmp_path / "out"), "--no_figures",
            "--attacks", "threshold", "lira"]
    assert main(argv) == 0
    short = capsys.readouterr().out
    assert short.startswith("== audit: done ==") and "Threshold attack\n" not in short
    assert "LiRA: not run, needs K >= 4 reference models" in short and "audit_manifest.json" in short
    assert main([*argv, "--verbose"]) == 0
    verbose = capsys.readouterr().out
    assert verbose.startswith("Threshold attack\n") and "AUROC" in verbose


def test_lira_scores_extra_sets_outside_the_reference_population():
    """Rows of set_* (and held-out) are OUT for every reference model: LiRA still scores them."""
    rng = np.random.default_rng(5)
    m = n = 100
    member_labels, non_member_labels = rng.integers(0, CLASSES, m), rng.integers(0, CLASSES, n)
    refs, reference_in = reference_arrays(rng, member_labels, non_member_labels, k=4, gap=3.0)
    target = rng.normal(size=(m + n, CLASSES))
    result = audit_scores({"member_logits": target[:m], "member_labels": member_labels,
                           "non_member_logits": target[m:], "non_member_labels": non_member_labels,
                           "reference_logits": refs, "reference_in": reference_in,
                           "set_Noise_logits": rng.normal(size=(50, CLASSES)),
                           "set_Noise_reference_logits": rng.normal(size=(4, 50, CLASSES)),
                           "held_out_logits": rng.normal(size=(60, CLASSES)),
                           "held_out_labels": rng.integers(0, CLASSES, 60),
                           "held_out_reference_logits": rng.normal(size=(4, 60, CLASSES))},
                          attacks=("lira", "lira_offline"))
    assert result.attack_table.loc[["Original", "Noise"], "LiRA Attack AUROC"].notna().all()
    assert "LiRA FPR@1%HeldOutFPR" in result.held_out_table
