"""StyleGAN2-ADA fake sets with a tiny stand-in generator (no network, no StyleGAN code)."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import datasets.sources as sources
import datasets.stylegan_fakes as fakes
from datasets import CIFAR10, ChecksumError, DataNotFoundError, DataRequest, GeneratedSizes, build_dataset
from datasets.verification import folder_md5
from datasets.sources import Source
from datasets.stylegan_fakes import PickleNotAllowedError, generate_fake_images
from utils.seeding import seeded
from tests.tiny_stylegan import PlainGenerator, TinyGenerator, write_generator_pickle

CLASSES = fakes.PAPER_CIFAR10_FOLDERS


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


@pytest.fixture
def cifar_pkl(tmp_path):
    return write_generator_pickle(tmp_path / "g_cifar.pkl", c_dim=10)


@pytest.fixture
def dog_pkl(tmp_path):
    return write_generator_pickle(tmp_path / "g_dog.pkl", c_dim=0, img_resolution=12)


def test_refuses_to_unpickle_without_opt_in(tmp_path, cifar_pkl):
    with pytest.raises(PickleNotAllowedError, match=r"unpickling runs code .*--allow_pickle \(allow_pickle=True\)"):
        generate_fake_images(cifar_pkl, tmp_path / "out", 20, CLASSES)
    assert not (tmp_path / "out" / "Images").exists()


def test_conditional_layout_balance_and_pixels(tmp_path, cifar_pkl):
    record = generate_fake_images(cifar_pkl, tmp_path / "out", 20, CLASSES, allow_pickle=True)
    images = tmp_path / "out" / "Images"
    assert sorted(p.name for p in images.iterdir()) == sorted(CLASSES)
    for name in CLASSES:
        assert sorted(p.name for p in (images / name).iterdir()) == ["00000.png", "00001.png"]
    assert [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")] == []  # no temp left
    # the protocol, replayed by hand: seed, latents, chunk i with one-hot i, one image per call
    generator, one_hot = TinyGenerator(c_dim=10), torch.eye(10)
    with seeded(42), torch.no_grad():
        latents = torch.randn(20, generator.z_dim)
        generator(latents[:1], one_hot[:1])  # class 0, images 0 and 1 draw their noise first
        generator(latents[1:2], one_hot[:1])
        image = generator(latents[2:3], one_hot[1:2])[0]  # class 1 ("car"), image 0
    expected = (image.permute(1, 2, 0) * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    assert np.array_equal(np.asarray(Image.open(images / "car" / "00000.png")), expected.numpy())
    assert record["folder_md5"] == folder_md5(images) and record["num_images"] == 20
    assert (tmp_path / "out" / "Images.json").is_file()


def test_same_seed_same_bytes_other_seed_other_images(tmp_path, cifar_pkl):
    for name, seed in (("a", 42), ("b", 42), ("c", 43)):
        generate_fake_images(cifar_pkl, tmp_path / name, 20, CLASSES, seed=seed, allow_pickle=True)
    first, second, third = (_files(tmp_path / name / "Images") for name in "abc")
    assert first == second
    assert first.keys() == third.keys() and all(first[key] != third[key] for key in first)


def test_unconditional_generator_one_folder_and_truncation(tmp_path, dog_pkl):
    generate_fake_images(dog_pkl, tmp_path / "psi", 10, ("dog",), truncation_psi=0.7, allow_pickle=True)
    generate_fake_images(dog_pkl, tmp_path / "one", 10, ("dog",), truncation_psi=1.0, allow_pickle=True)
    truncated, plain = _files(tmp_path / "psi" / "Images"), _files(tmp_path / "one" / "Images")
    assert sorted(truncated) == [f"dog/{index:05d}.png" for index in range(10)]
    assert truncated != plain
    assert Image.open(tmp_path / "psi" / "Images" / "dog" / "00003.png").size == (12, 12)


def test_generator_without_truncation_argument(tmp_path):
    pkl = write_generator_pickle(tmp_path / "plain.pkl", PlainGenerator(c_dim=0))
    generate_fake_images(pkl, tmp_path / "ok", 4, ("dog",), allow_pickle=True)
    with pytest.raises(ValueError, match="takes no truncation_psi; cannot apply truncation_psi=0.7"):
        generate_fake_images(pkl, tmp_path / "bad", 4, ("dog",), truncation_psi=0.7, allow_pickle=True)


def test_generator_checksum_is_checked_before_unpickling(tmp_path, cifar_pkl):
    with pytest.raises(ChecksumError, match=r"g_cifar.pkl has md5 [0-9a-f]{32}, expected 0{32}; download"):
        generate_fake_images(cifar_pkl, tmp_path / "out", 20, CLASSES, allow_pickle=True,
                             generator_md5="0" * 32)


def _request(root, split="train", allow_pickle=False, domain=CIFAR10, num_images=None, **options):
    return DataRequest(domain=domain, data_root=root, split=split, allow_pickle=allow_pickle,
                       sizes=GeneratedSizes(num_images=num_images), **options)


@pytest.fixture
def published(monkeypatch, cifar_pkl, dog_pkl):
    """Let the tiny pickles stand in for the published generators (their MD5s)."""
    from utils.files import md5_file

    for key, pkl in (("stylegan2_cifar10", cifar_pkl), ("stylegan2_afhqdog", dog_pkl)):
        old = sources.SOURCES[key]
        monkeypatch.setitem(sources.SOURCES, key, Source(old.url, old.filename, md5_file(pkl)))


def test_fake_cifar10_missing_needs_generator_and_opt_in(tmp_path, cifar_pkl, published):
    with pytest.raises(DataNotFoundError, match=r"Fake CIFAR-10: no images in .*Images_seed42_n20; .*"
                                                r"cifar10.pkl .*--generator_pkl PATH --allow_pickle") as error:
        build_dataset("fake_cifar10", _request(tmp_path, num_images=20))
    assert "\n" not in str(error.value)
    with pytest.raises(DataNotFoundError, match="unpickles .*g_cifar.pkl.*pass --allow_pickle"):
        build_dataset("fake_cifar10", _request(tmp_path, num_images=20, generator_pkl=str(cifar_pkl)))


def test_fake_cifar10_halves_labels_and_no_regeneration(tmp_path, cifar_pkl, published, monkeypatch):
    request = dict(num_images=20, generator_pkl=str(cifar_pkl))
    train = build_dataset("fake_cifar10", _request(tmp_path, allow_pickle=True, **request))
    monkeypatch.setattr(fakes, "generate_fake_images", lambda *a, **k: pytest.fail("regenerated"))
    test = build_dataset("fake_cifar10", _request(tmp_path, "test", **request))
    assert (train.name, len(train), len(test), train.in_label_space) == ("Fake CIFAR-10", 10, 10, True)
    assert set(train.dataset.indices) | set(test.dataset.indices) == set(range(20))
    assert sorted(train.dataset.labels.tolist()) == list(range(10))  # stratified: one per class
    paths = train.dataset.base.paths
    for position, index in enumerate(train.dataset.indices):
        folder = Path(paths[index]).parent.name
        assert CIFAR10.class_names[train.dataset.labels[position]] == fakes.FOLDER_ALIASES.get(folder, folder)
    image, _ = train.dataset[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    again = build_dataset("fake_cifar10", _request(tmp_path, **request))
    assert np.array_equal(again.dataset.indices, train.dataset.indices)
    assert torch.equal(again.dataset[3][0], train.dataset[3][0])


def test_fake_cifar10_corrupt_folder_is_regenerated_or_reported(tmp_path, cifar_pkl, published):
    request = dict(num_images=20, generator_pkl=str(cifar_pkl))
    build_dataset("fake_cifar10", _request(tmp_path, allow_pickle=True, **request))
    folder = tmp_path / "fake_cifar10" / "Images_seed42_n20"
    good = _files(folder)
    (folder / "cat" / "00001.png").write_bytes(b"broken")
    with pytest.raises(ChecksumError, match=r"Images_seed42_n20 has md5 .*recorded .*--allow_pickle"):
        build_dataset("fake_cifar10", _request(tmp_path, num_images=20))
    build_dataset("fake_cifar10", _request(tmp_path, allow_pickle=True, **request))
    assert _files(folder) == good
    (folder / "cat" / "00001.png").unlink()
    build_dataset("fake_cifar10", _request(tmp_path, allow_pickle=True, **request))
    assert _files(folder) == good


def test_fake_folder_found_on_disk_is_recorded(tmp_path, cifar_pkl):
    generate_fake_images(cifar_pkl, tmp_path / "fake_cifar10", 20, CLASSES, images_dirname="Images_seed42_n20",
                         allow_pickle=True)
    (tmp_path / "fake_cifar10" / "Images_seed42_n20.json").unlink()  # e.g. made by the paper's code
    named = build_dataset("fake_cifar10", _request(tmp_path, num_images=20))
    assert len(named) == 10
    assert "found on disk" in (tmp_path / "fake_cifar10" / "Images_seed42_n20.json").read_text()


def test_fake_dogs_unlabelled_and_stratified_by_generation_chunk(tmp_path, dog_pkl, published):
    named = build_dataset("fake_dogs", _request(tmp_path, allow_pickle=True, num_images=40,
                                                generator_pkl=str(dog_pkl)))
    folder = tmp_path / "fake_afhq_dogs" / "Images_seed42_n40"
    assert [p.name for p in folder.iterdir()] == ["dog"] and len(named) == 20
    assert not named.in_label_space and set(named.dataset.labels.tolist()) == {-1}
    chunks = np.bincount(named.dataset.indices // 4, minlength=10)
    assert chunks.tolist() == [2] * 10  # the paper's 10 folders of 500, scaled down


def test_wrong_generator_is_refused(tmp_path, dog_pkl, published):
    with pytest.raises(ChecksumError, match=r"g_dog.pkl has md5 .*expected"):
        build_dataset("fake_cifar10", _request(tmp_path, allow_pickle=True, num_images=20,
                                               generator_pkl=str(dog_pkl)))


def test_download_fetches_the_published_generator(tmp_path, cifar_pkl, published, monkeypatch):
    calls = []

    def fake_download(url, root, filename, md5):
        calls.append((url, filename, md5))
        Path(root).mkdir(parents=True, exist_ok=True)
        Path(root, filename).write_bytes(cifar_pkl.read_bytes())

    monkeypatch.setattr(fakes, "download_url", fake_download)
    request = DataRequest(CIFAR10, data_root=tmp_path, split="train", download=True, allow_pickle=True,
                          sizes=GeneratedSizes(num_images=20))
    assert len(build_dataset("fake_cifar10", request)) == 10
    source = sources.SOURCES["stylegan2_cifar10"]
    assert calls == [(source.url, "pretrained_net_cifar10.pkl", source.md5)]
    assert (tmp_path / "fake_cifar10" / "pretrained_net_cifar10.pkl").is_file()
