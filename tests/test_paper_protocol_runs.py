"""The paper's scripts on tiny data roots: indices file, its manifest checksum, whole OOD sets."""
import dataclasses
import hashlib
import json

import numpy as np
import pytest
from PIL import Image
from torchvision.datasets import CIFAR10

from datasets import sources, stylegan_fakes
from datasets.splits import paper as paper_splits
from tests.fixtures_data import make_tiny_afhq, make_tiny_cifar10, use_tiny_checksums
from tests.test_experiment_scripts import run_script, use_tiny_dogs_and_afhq

pytestmark = pytest.mark.slow  # end-to-end runs (kept in the default run)


def read_indices(results, stem):
    """The run's indices file as arrays, after checking it against the manifest's sha256."""
    path = results / f"{stem}splits.npz"
    manifest = json.loads((results / f"{stem}manifest.json").read_text())
    assert manifest["splits"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert manifest["outputs"]["splits"] == str(path)
    with np.load(path) as data:
        return {key: data[key] for key in data.files}, manifest


def test_cifar10_train_then_load_write_the_papers_indices(tmp_path, monkeypatch):
    use_tiny_checksums(monkeypatch, CIFAR10, make_tiny_cifar10(tmp_path, per_class=10))
    monkeypatch.setitem(sources.FOLDER_MD5, "afhq", make_tiny_afhq(tmp_path, per_class=12)["folder_md5"]["afhq"])
    flags = ["--train_set_size", "30", "--test_set_size", "20", "--attack_set_size", "10", "--seed", "5",
             "--sets", "original", "afhq_dogs", "--no_figures", "--attacks", "threshold"]
    stem = "salem_cnn_relu_cifar10_"
    results = run_script("cifar10", tmp_path, "--train", *flags)
    trained, manifest = read_indices(results, stem)
    assert manifest["splits"]["protocol"] == "paper_cifar10" and str(trained["protocol"]) == "paper_cifar10"
    assert "membership_check" in manifest["notes"] and not manifest["notes"]["membership_check"]

    expected = paper_splits.cifar10_splits(np.tile(np.arange(10), 10), 100, 30, 20, 10, seed=5)
    for name, indices in {**expected.as_dict(), **expected.attack_indices()}.items():
        assert trained[name].tolist() == indices.tolist(), name
    assert len(np.intersect1d(trained["target_train"], trained["shadow_train"])) == 0
    assert np.isin(trained["target_members"], trained["target_train"]).all()
    assert trained["set_afhq_dogs"].tolist() == paper_splits.random_split_parts(12, 10, 0)[0].tolist()

    run_script("cifar10", tmp_path, *flags)  # the same command without --train loads the checkpoints
    loaded, manifest_loaded = read_indices(results, stem)
    assert manifest_loaded["splits"]["sha256"] == manifest["splits"]["sha256"]  # same indices, same bytes
    assert loaded.keys() == trained.keys()
    assert all(np.array_equal(loaded[key], trained[key]) for key in trained)
    assert set(manifest_loaded["notes"]["membership_check"]) == {"target", "shadow"}


def make_fake_dog_folder(root, per_folder=2):
    """A finished Fake Dogs folder as the paper's generator leaves it: ``GoodBoys0..9``."""
    for chunk in range(10):
        folder = root / "fake_afhq_dogs" / "Images" / f"GoodBoys{chunk}"
        folder.mkdir(parents=True)
        for number in range(per_folder):
            pixels = np.random.default_rng(chunk * 10 + number).integers(0, 256, (16, 16, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{number:05d}.png")
    return 10 * per_folder


def test_stanford_dogs_uses_the_whole_afhq_and_fake_dogs_sets(tmp_path, monkeypatch):
    use_tiny_dogs_and_afhq(tmp_path, monkeypatch)
    fakes = make_fake_dog_folder(tmp_path)
    spec = stylegan_fakes.FAKE_SETS["fake_dogs"]
    monkeypatch.setitem(stylegan_fakes.FAKE_SETS, "fake_dogs", dataclasses.replace(spec, num_images=fakes))
    stem = "salem_cnn_relu_stanford_dogs_"
    results = run_script("stanford_dogs", tmp_path, "--train", "--model_input_image_size", "32",
                         "--no_figures", "--attacks", "threshold", "--seed", "3")
    indices, manifest = read_indices(results, stem)
    assert manifest["notes"]["skipped_sets"] == {}
    folders = {"afhq_dogs": 12, "afhq_cats": 12, "afhq_wild": 12, "afhq_nondogs": 24, "fake_dogs": fakes // 2}
    for key, count in folders.items():  # every image (Fake Dogs: its whole train half, as the paper)
        assert indices[f"set_{key}"].tolist() == list(range(count)), key
    assert sorted(indices["set_fake_dogs_base"].tolist()) != list(range(fakes))
    assert len(np.unique(indices["set_fake_dogs_base"])) == fakes // 2
    assert np.bincount(indices["set_fake_dogs_base"] // 2, minlength=10).tolist() == [1] * 10  # stratified

    expected = paper_splits.stanford_dogs_splits(80, seed=3)  # all 80 images, 0.8 / 0.5 splits
    for name, value in {**expected.as_dict(), **expected.attack_indices()}.items():
        assert indices[name].tolist() == value.tolist(), name
    assert [len(indices[n]) for n in ("target_train", "target_test", "target_members")] == [32, 16, 8]
    assert np.array_equal(indices["target_test"], indices["shadow_test"])  # one shared test split
