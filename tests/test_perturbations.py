import pytest
import torch
from torch.utils.data import TensorDataset

from datasets import DIGITS, DataRequest, NamedSet, build_dataset
from datasets.perturbations import perturb


def _original(n=6):
    images = DIGITS.normalize(torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(0)))
    return NamedSet("Original", TensorDataset(images, torch.arange(n) % 10), True)


def test_scaled_and_no_normalization():
    original = _original()
    image, label = original.dataset[2]
    scaled_image, scaled_label = perturb("scaled", original, DIGITS, 0).dataset[2]
    assert torch.allclose(scaled_image, image * 255) and scaled_label == label
    raw, _ = perturb("no_normalization", original, DIGITS, 0).dataset[2]
    assert torch.allclose(DIGITS.normalize(raw), image, atol=1e-6)


def test_permuted_keeps_pixels_and_is_seeded():
    original = _original()
    image, _ = original.dataset[1]
    first = perturb("permuted", original, DIGITS, 5).dataset[1][0]
    assert torch.equal(first.flatten().sort().values, image.flatten().sort().values)
    assert not torch.equal(first, image)
    assert torch.equal(first, perturb("permuted", original, DIGITS, 5).dataset[1][0])
    assert not torch.equal(first, perturb("permuted", original, DIGITS, 6).dataset[1][0])


def test_noise_is_outside_label_space_and_in_range():
    noise = perturb("noise", _original(), DIGITS, 0)
    image, label = noise.dataset[0]
    assert label == -1 and not noise.in_label_space and len(noise) == 6
    assert 0 <= DIGITS.denormalize(image).min() and DIGITS.denormalize(image).max() <= 1 + 1e-6


def test_registry_wraps_and_rejects_unknown_names():
    request = DataRequest(domain=DIGITS)
    assert len(build_dataset("permuted(digits)", request)) == 1797
    with pytest.raises(ValueError, match="unknown data set 'nope'"):
        build_dataset("nope", request)
    with pytest.raises(ValueError, match="unknown perturbation 'blur'"):
        build_dataset("blur(digits)", request)


def test_sample_photos_in_digits_domain():
    photos = build_dataset("sample_photos", DataRequest(domain=DIGITS))
    image, label = photos.dataset[0]
    assert image.shape == (1, 8, 8) and label == -1 and len(photos) >= 400
