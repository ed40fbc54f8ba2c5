"""The conditional GAN and the cached fake-digits set (tiny GAN runs, one realistic run)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.model_selection import train_test_split

import datasets.fake_digits as fake_digits
from datasets.conditional_gan import GANConfig, sample, train_conditional_gan
from utils.threads import single_thread
from datasets.digits import load_digits_tensors
from datasets.domain import DIGITS
from datasets.fake_digits import fake_digits_named_set, make_fake_digits, save_sample_grid
from models.small_cnn import SmallCNN
from models.training import TrainConfig, train_model
from utils.seeding import seeded

TINY = GANConfig(steps=15, hidden=32, z_dim=8)  # seconds-long runs for mechanics, not quality
SHADOW_SIZE = 400                                # the digits preset's shadow split


@pytest.fixture(scope="module")
def digits():
    return load_digits_tensors()


@pytest.fixture(scope="module")
def tiny_data(digits):
    images, labels = digits
    return images[:120], labels[:120]


@pytest.fixture(scope="module")
def shadow_run(digits, tmp_path_factory):
    """A shadow-sized stratified split, a SmallCNN trained on it, and the default GAN's fakes."""
    images, labels = digits
    index, rest = train_test_split(np.arange(len(labels)), train_size=SHADOW_SIZE, random_state=0,
                                   stratify=labels.numpy())
    with seeded(0):
        classifier = SmallCNN()
    with single_thread():  # a tiny CNN: more threads only add waiting (minutes on a busy machine)
        train_model(classifier, DIGITS.normalize(images[index]), labels[index],
                    TrainConfig(epochs=30, batch_size=32, seed=0), progress=False)
    kwargs = dict(num_images=500, seed=0, cache_dir=tmp_path_factory.mktemp("fake_cache"),
                  reference_classifier=classifier, domain=DIGITS, progress=False)
    fake = make_fake_digits(images[index], labels[index], **kwargs)
    return {"classifier": classifier, "fake": fake, "kwargs": kwargs,
            "shadow": (images[index], labels[index]), "rest": (images[rest], labels[rest])}


@pytest.mark.slow
def test_samples_agree_with_a_classifier_trained_on_the_same_shadow_data(shadow_run):
    classifier, fake = shadow_run["classifier"], shadow_run["fake"]
    rest_images, rest_labels = shadow_run["rest"]
    with torch.no_grad():
        predicted = classifier(DIGITS.normalize(rest_images)).argmax(1)
    test_accuracy = (predicted == rest_labels).float().mean()
    assert test_accuracy > 0.9  # the classifier is a fair judge
    assert fake.agreement >= 0.9
    assert len(fake) == fake.num_generated == 500
    assert torch.equal(fake.labels.bincount(), torch.full((10,), 50))
    assert 0.0 <= fake.images.min() and fake.images.max() <= 1.0


def test_filtering_drops_samples_the_classifier_assigns_elsewhere(shadow_run, monkeypatch):
    monkeypatch.setattr(fake_digits, "train_conditional_gan", _must_not_train)
    unfiltered = shadow_run["fake"]
    kept = make_fake_digits(*shadow_run["shadow"], **shadow_run["kwargs"], filter_misclassified=True)
    with torch.no_grad():
        predicted = shadow_run["classifier"](DIGITS.normalize(kept.images)).argmax(1)
    assert torch.equal(predicted, kept.labels)
    assert len(kept) == round(unfiltered.agreement * unfiltered.num_generated)
    assert kept.checksum == unfiltered.checksum and kept.agreement == unfiltered.agreement


@pytest.mark.parametrize("num_images", [30, 25])
def test_filter_keeps_only_agreeing_samples_mechanically(tiny_data, tmp_path, num_images):
    def always_zero(images):  # probabilities, not logits: argmax is what counts
        return torch.nn.functional.one_hot(torch.zeros(len(images), dtype=torch.long), 10).float()

    fake = make_fake_digits(*tiny_data, num_images=num_images, seed=1, cache_dir=tmp_path,
                            reference_classifier=always_zero, filter_misclassified=True,
                            gan_config=TINY, progress=False)
    first_class = num_images // 10 + (num_images % 10 > 0)
    assert len(fake) == first_class and torch.all(fake.labels == 0)
    assert fake.agreement == pytest.approx(first_class / num_images)


def test_same_seed_gives_byte_identical_images_and_leaves_no_global_state(tiny_data):
    rng_before, threads_before = torch.get_rng_state(), torch.get_num_threads()
    first = sample(train_conditional_gan(*tiny_data, seed=3, config=TINY, progress=False), 5, seed=3)
    second = sample(train_conditional_gan(*tiny_data, seed=3, config=TINY, progress=False), 5, seed=3)
    other = sample(train_conditional_gan(*tiny_data, seed=4, config=TINY, progress=False), 5, seed=3)
    assert first[0].numpy().tobytes() == second[0].numpy().tobytes()
    assert torch.equal(first[1], torch.arange(10).repeat_interleave(5))
    assert not torch.equal(first[0], other[0])
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert torch.get_num_threads() == threads_before


def test_generator_interface(tiny_data):
    generator = train_conditional_gan(*tiny_data, seed=0, epochs=1, batch_size=32, progress=False,
                                      config=TINY)
    assert (generator.z_dim, generator.num_classes) == (8, 10)
    images = generator(torch.randn(4, 8), torch.tensor([0, 3, 5, 9]))
    assert images.shape == (4, 1, 8, 8) and images.min() >= 0 and images.max() <= 1


def test_second_call_loads_the_cache_without_training(tiny_data, tmp_path, monkeypatch):
    first = make_fake_digits(*tiny_data, num_images=20, seed=0, cache_dir=tmp_path, gan_config=TINY,
                             progress=False)
    assert first.path.parent == tmp_path and first.path.name.startswith("fake_digits_")
    monkeypatch.setattr(fake_digits, "train_conditional_gan", _must_not_train)
    second = make_fake_digits(*tiny_data, num_images=20, seed=0, cache_dir=tmp_path, gan_config=TINY,
                              progress=False)
    assert second.checksum == first.checksum and torch.equal(second.images, first.images)
    assert second.path == first.path
    assert [p.name for p in tmp_path.iterdir()] == [first.path.name]  # no temporary files left


@pytest.mark.parametrize("change", ["seed", "data", "config"])
def test_cache_key_changes_with_what_makes_the_images(tiny_data, tmp_path, change):
    images, labels = tiny_data
    base = dict(num_images=20, seed=0, cache_dir=tmp_path, gan_config=TINY, progress=False)
    first = make_fake_digits(images, labels, **base)
    altered = dict(base)
    if change == "seed":
        altered["seed"] = 1
    elif change == "config":
        altered["gan_config"] = GANConfig(steps=16, hidden=32, z_dim=8)
    else:
        images = images.clone()
        images[0, 0, 0, 0] = 1.0 - images[0, 0, 0, 0]
    assert make_fake_digits(images, labels, **altered).path != first.path


@pytest.mark.parametrize("damage", ["garbage", "tampered"])
def test_corrupt_cache_is_regenerated(tiny_data, tmp_path, damage):
    first = make_fake_digits(*tiny_data, num_images=20, seed=0, cache_dir=tmp_path, gan_config=TINY,
                             progress=False)
    if damage == "garbage":
        first.path.write_bytes(b"not a torch file")
    else:
        content = torch.load(first.path, weights_only=True)
        content["images"][0, 0, 0, 0] += 0.5
        torch.save(content, first.path)
    again = make_fake_digits(*tiny_data, num_images=20, seed=0, cache_dir=tmp_path, gan_config=TINY,
                             progress=False)
    assert again.checksum == first.checksum and torch.equal(again.images, first.images)
    content = torch.load(again.path, weights_only=True)  # the file itself was repaired
    assert content["sha256"] == first.checksum and torch.equal(content["images"], first.images)


def test_named_set_is_normalised_and_in_label_space(tiny_data, tmp_path):
    fake = make_fake_digits(*tiny_data, num_images=20, seed=0, cache_dir=tmp_path, gan_config=TINY,
                            progress=False)
    named = fake_digits_named_set(fake, DIGITS)
    assert named.name == "Fake" and named.in_label_space and len(named) == 20
    image, label = named.dataset[5]
    assert image.shape == DIGITS.shape and image.dtype == torch.float32
    assert torch.allclose(image, DIGITS.normalize(fake.images[5])) and int(label) == fake.labels[5]


def test_sample_grid_png_is_written(tiny_data, tmp_path):
    images, labels = tiny_data
    path = save_sample_grid(images, labels, tmp_path / "grids" / "fake.png", per_class=4)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["fake.png"]


def test_bad_input_is_rejected_with_a_reason(tiny_data, tmp_path):
    images, labels = tiny_data
    with pytest.raises(ValueError, match="denormalize"):
        train_conditional_gan(DIGITS.normalize(images), labels, config=TINY, progress=False)
    with pytest.raises(ValueError, match="labels must lie"):
        train_conditional_gan(images, labels + 5, config=TINY, progress=False)
    with pytest.raises(ValueError, match="reference_classifier"):
        make_fake_digits(images, labels, num_images=10, seed=0, cache_dir=tmp_path,
                         filter_misclassified=True)
    with pytest.raises(ValueError, match="num_images"):
        make_fake_digits(images, labels, num_images=0, seed=0, cache_dir=tmp_path)


def _must_not_train(*args, **kwargs):
    raise AssertionError("the GAN was retrained although its cache was valid")
