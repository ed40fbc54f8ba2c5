"""The real-data builders on tiny files in each published format (no network)."""
import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.datasets import CIFAR10, CIFAR100, STL10, SVHN

import datasets.afhq as afhq_module
import datasets.sources as sources
from datasets import CIFAR10 as CIFAR10_DOMAIN
from datasets import DIGITS, ChecksumError, DataNotFoundError, DataRequest, build_dataset, dataset_names
from datasets.domain import stanford_dogs_domain
from datasets.transforms import domain_transform
from datasets.verification import folder_md5, paper_folder_md5
from datasets.stanford_dogs import stanford_dogs_class_names, stanford_dogs_domain_from_root
from tests.fixtures_data import (make_tiny_afhq, make_tiny_cifar10, make_tiny_cifar100,
                                 make_tiny_stanford_dogs, make_tiny_stl10, make_tiny_svhn,
                                 use_tiny_checksums)

SMALL_DOGS = stanford_dogs_domain(("Breed_A", "Breed_B", "Breed_C"), image_size=16)


def _request(root, domain=CIFAR10_DOMAIN, split="test", **options):
    return DataRequest(domain=domain, data_root=root, split=split, **options)


def _all(named):
    images, labels = zip(*(named.dataset[i] for i in range(len(named))))
    return torch.stack(images), torch.tensor(labels)


def _one_line(error):
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.fixture
def cifar10_root(tmp_path, monkeypatch):
    use_tiny_checksums(monkeypatch, CIFAR10, make_tiny_cifar10(tmp_path, per_class=3))
    return tmp_path


def test_registry_lists_the_papers_sets():
    assert {"cifar10", "cifar100", "svhn", "stl10", "stanford_dogs", "afhq_cats", "afhq_dogs",
            "afhq_wild", "afhq_nondogs", "fake_cifar10", "fake_dogs"} <= set(dataset_names())


def test_cifar10_splits_shapes_labels_and_normalisation(cifar10_root):
    test = build_dataset("cifar10", _request(cifar10_root))
    train = build_dataset("cifar10", _request(cifar10_root, split="train"))
    assert (len(train), len(test), test.name, test.in_label_space) == (30, 30, "CIFAR-10", True)
    images, labels = _all(test)
    assert images.dtype == torch.float32 and images.shape == (30, 3, 32, 32)
    with open(cifar10_root / "cifar-10-batches-py" / "test_batch", "rb") as handle:
        raw = pickle.load(handle)
    pixels = torch.from_numpy(raw["data"].reshape(-1, 3, 32, 32)).float() / 255
    assert torch.allclose(images, CIFAR10_DOMAIN.normalize(pixels), atol=1e-6)
    assert labels.tolist() == raw["labels"]
    assert torch.equal(test.dataset.labels, labels)  # exposed without decoding images


def test_cifar10_same_request_same_tensors(cifar10_root):
    first, second = (_all(build_dataset("cifar10", _request(cifar10_root))) for _ in range(2))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_cifar10_outside_its_label_space_and_other_domains(cifar10_root):
    named = build_dataset("cifar10", _request(cifar10_root, domain=SMALL_DOGS))
    image, label = named.dataset[0]
    assert image.shape == (3, 16, 16) and label == -1 and not named.in_label_space
    image, _ = build_dataset("cifar10", _request(cifar10_root, domain=DIGITS)).dataset[0]
    assert image.shape == (1, 8, 8)


def test_cifar10_in_the_papers_folder_layout(tmp_path, monkeypatch):
    use_tiny_checksums(monkeypatch, CIFAR10, make_tiny_cifar10(tmp_path / "cifar10", per_class=1))
    assert len(build_dataset("cifar10", _request(tmp_path))) == 10


def test_cifar10_missing_files(tmp_path):
    with pytest.raises(DataNotFoundError) as error:
        build_dataset("cifar10", _request(tmp_path))
    message = _one_line(error)
    assert "CIFAR-10: missing data_batch_1" in message and "cifar-10-batches-py" in message
    assert "cifar-10-python.tar.gz" in message and "--download" in message


def test_cifar10_checksum_mismatch(cifar10_root):
    batch = cifar10_root / "cifar-10-batches-py" / "test_batch"
    batch.write_bytes(batch.read_bytes() + b"\0")
    with pytest.raises(ChecksumError, match=r"test_batch has md5 [0-9a-f]{32}, expected [0-9a-f]{32}") as error:
        build_dataset("cifar10", _request(cifar10_root))
    _one_line(error)


def test_cifar10_real_checksums_stay_on(tmp_path):
    make_tiny_cifar10(tmp_path, per_class=1)  # not patched: torchvision's published MD5s apply
    with pytest.raises(ChecksumError, match="data_batch_1 has md5 .*expected c99cafc152244af753f735de768cd75f"):
        build_dataset("cifar10", _request(tmp_path))


def test_cifar100_has_no_cifar10_labels(tmp_path, monkeypatch):
    use_tiny_checksums(monkeypatch, CIFAR100, make_tiny_cifar100(tmp_path))
    named = build_dataset("cifar100", _request(tmp_path, split="train"))
    assert (named.name, len(named), named.in_label_space) == ("CIFAR100", 100, False)
    assert set(named.dataset.labels.tolist()) == {-1} and named.dataset[5][1] == -1


def test_svhn_labels_for_digit_targets_only(tmp_path, monkeypatch):
    use_tiny_checksums(monkeypatch, SVHN, make_tiny_svhn(tmp_path))
    digits = build_dataset("svhn", _request(tmp_path, domain=DIGITS, split="train"))
    assert digits.in_label_space and digits.dataset.labels.tolist() == [i % 10 for i in range(12)]
    assert digits.dataset[0][0].shape == (1, 8, 8)
    cifar = build_dataset("svhn", _request(tmp_path, split="test"))
    assert len(cifar) == 8 and not cifar.in_label_space and cifar.dataset[3][1] == -1


def test_svhn_missing_and_corrupt(tmp_path, monkeypatch):
    with pytest.raises(DataNotFoundError, match=r"SVHN: missing train_32x32.mat in .*svhn; get it from http") as error:
        build_dataset("svhn", _request(tmp_path, split="train"))
    _one_line(error)
    make_tiny_svhn(tmp_path)  # checksums not patched: the published ones apply
    with pytest.raises(ChecksumError, match="test_32x32.mat has md5 .*expected eb5a983be6a315427106f1b164d9cef3"):
        build_dataset("svhn", _request(tmp_path))


def test_stl10_drops_monkeys_and_maps_labels(tmp_path, monkeypatch):
    use_tiny_checksums(monkeypatch, STL10, make_tiny_stl10(tmp_path, per_class=2))
    named = build_dataset("stl10", _request(tmp_path, split="train"))
    assert (named.name, len(named), named.in_label_space) == ("STL-10", 18, True)
    mapping = {0: 0, 1: 2, 2: 1, 3: 3, 4: 4, 5: 5, 6: 7, 8: 8, 9: 9}
    expected = [mapping[label] for label in list(range(10)) * 2 if label != 7]
    assert named.dataset.labels.tolist() == expected
    image, label = named.dataset[1]  # STL "bird" -> CIFAR-10 "bird" (2)
    assert image.shape == (3, 32, 32) and label == 2
    raw = np.fromfile(tmp_path / "stl10_binary" / "train_X.bin", dtype=np.uint8).reshape(-1, 3, 96, 96)
    picture = Image.fromarray(raw[1].transpose(2, 1, 0))  # column-major -> (H, W, C)
    assert torch.equal(image, domain_transform(CIFAR10_DOMAIN)(picture))
    other = build_dataset("stl10", _request(tmp_path, domain=SMALL_DOGS, split="test"))
    assert len(other) == 18 and not other.in_label_space and other.dataset[0][1] == -1


def test_stl10_missing(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"STL-10: missing train_X.bin, train_y.bin in .*stl10_binary"):
        build_dataset("stl10", _request(tmp_path, split="train"))


@pytest.fixture
def dogs_root(tmp_path, monkeypatch):
    made = make_tiny_stanford_dogs(tmp_path, breeds=3, per_breed=4, test_per_breed=1)
    for key, value in {**made["file_md5"], **made["folder_md5"]}.items():
        table = sources.FILE_MD5 if key.endswith(".mat") else sources.FOLDER_MD5
        monkeypatch.setitem(table, key, value)
    return tmp_path


def test_stanford_dogs_splits_and_labels(dogs_root):
    assert stanford_dogs_class_names(dogs_root) == ("Breed_A", "Breed_B", "Breed_C")
    domain = stanford_dogs_domain_from_root(dogs_root, image_size=16)
    sizes = {}
    for split in ("train", "test", "all"):
        named = build_dataset("stanford_dogs", _request(dogs_root, domain=domain, split=split))
        assert named.in_label_space and named.name == "Stanford Dogs"
        sizes[split] = len(named)
        assert named.dataset.labels.tolist() == sorted(named.dataset.labels.tolist())
    assert sizes == {"train": 9, "test": 3, "all": 12}
    image, label = named.dataset[11]
    assert image.shape == (3, 16, 16) and label == 2


def test_stanford_dogs_eval_transform_is_resize_then_centre_crop(dogs_root):
    domain = stanford_dogs_domain_from_root(dogs_root, image_size=224)
    named = build_dataset("stanford_dogs", _request(dogs_root, domain=domain, split="test"))
    image, _ = named.dataset[0]
    picture = Image.open(named.dataset.base.paths[0]).convert("RGB")
    from torchvision import transforms as T
    expected = T.Compose([T.Resize(224), T.CenterCrop(224), T.ToTensor(),
                          T.Normalize(domain.mean, domain.std)])(picture)
    assert image.shape == (3, 224, 224) and torch.equal(image, expected)
    augmented = build_dataset("stanford_dogs", _request(dogs_root, domain=domain, split="train", augment=True))
    assert augmented.dataset[0][0].shape == (3, 224, 224)


def test_stanford_dogs_for_a_cifar10_target(dogs_root):
    named = build_dataset("stanford_dogs", _request(dogs_root, split="all"))
    assert not named.in_label_space and named.dataset[0][0].shape == (3, 32, 32) and named.dataset[0][1] == -1


def test_stanford_dogs_domain_must_match_the_folders(dogs_root):
    with pytest.raises(ValueError, match="breed folders"):
        build_dataset("stanford_dogs", _request(dogs_root, domain=stanford_dogs_domain(("x",)), split="all"))


def test_stanford_dogs_missing_and_corrupt(tmp_path, dogs_root):
    with pytest.raises(DataNotFoundError, match=r"Stanford Dogs: missing Images/.*/images.tar .*--download") as error:
        build_dataset("stanford_dogs", _request(tmp_path / "elsewhere", split="all"))
    _one_line(error)
    (dogs_root / "stanford_dogs" / "test_list.mat").unlink()
    with pytest.raises(DataNotFoundError, match=r"missing test_list.mat in .*lists.tar"):
        build_dataset("stanford_dogs", _request(dogs_root, split="test"))
    image = next((dogs_root / "stanford_dogs" / "Images").rglob("*.jpg"))
    image.write_bytes(image.read_bytes()[:-10])
    with pytest.raises(ChecksumError, match=r"Stanford Dogs: folder .*Images has md5 .*expected") as error:
        build_dataset("stanford_dogs", _request(dogs_root, split="all"))
    _one_line(error)
    assert len(build_dataset("stanford_dogs", _request(dogs_root, split="all", verify_checksums=False))) == 12


def test_folder_verification_is_remembered(dogs_root, monkeypatch):
    build_dataset("stanford_dogs", _request(dogs_root, split="all"))
    assert (dogs_root / "stanford_dogs" / ".Images.md5.json").is_file()
    monkeypatch.setattr("datasets.verification.paper_folder_md5", lambda folder: pytest.fail("re-hashed"))
    build_dataset("stanford_dogs", _request(dogs_root, split="all"))


@pytest.fixture
def afhq_root(tmp_path, monkeypatch):
    monkeypatch.setitem(sources.FOLDER_MD5, "afhq", make_tiny_afhq(tmp_path)["folder_md5"]["afhq"])
    return tmp_path


@pytest.mark.parametrize("key, name, train, test", [
    ("afhq_cats", "AFHQ Cats", 3, 2), ("afhq_dogs", "AFHQ Dogs", 3, 2),
    ("afhq_wild", "AFHQ Wilds", 3, 2), ("afhq_nondogs", "AFHQ NonDogs", 6, 4)])
def test_afhq_subsets(afhq_root, key, name, train, test):
    sizes = [len(build_dataset(key, _request(afhq_root, split=split))) for split in ("train", "test", "all")]
    named = build_dataset(key, _request(afhq_root, split="train"))
    assert sizes == [train, test, train + test] and named.name == name and not named.in_label_space
    image, label = named.dataset[0]
    assert image.shape == (3, 32, 32) and label == -1
    folders = {(Path(path).parent.parent.name, Path(path).parent.name) for path in named.dataset.base.paths}
    assert folders == {("train", name) for name in afhq_module.SUBSETS[key][1]}


def test_afhq_missing_corrupt_and_download(tmp_path, afhq_root, monkeypatch):
    with pytest.raises(DataNotFoundError, match=r"AFHQ Dogs: missing afhq/train/ in .*afhq.zip .*--download") as error:
        build_dataset("afhq_dogs", _request(tmp_path / "empty"))
    _one_line(error)
    calls = []
    def fake_download(url, root, filename, md5):
        calls.append((url, filename, md5))
        make_tiny_afhq(root)

    monkeypatch.setattr(afhq_module, "download_and_extract_archive", fake_download)
    build_dataset("afhq_cats", DataRequest(CIFAR10_DOMAIN, data_root=tmp_path / "fresh", download=True,
                                           verify_checksums=False))
    assert calls == [(sources.SOURCES["afhq"].url, "afhq.zip", "6909887208505a6e70d732fa20629995")]
    next((afhq_root / "afhq" / "val" / "cat").iterdir()).write_bytes(b"not an image")
    with pytest.raises(ChecksumError, match=r"AFHQ Cats: folder .*afhq has md5 .*afhq.zip"):
        build_dataset("afhq_cats", _request(afhq_root))


def test_unknown_split_names_the_choices(afhq_root):
    with pytest.raises(ValueError, match="afhq_cats has no split 'valid'; choose from train, test, all"):
        build_dataset("afhq_cats", _request(afhq_root, split="valid"))


def test_folder_checksum_definitions(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "a.txt").write_bytes(b"x" * 5000)
    (tmp_path / "b" / "c.txt").write_bytes(b"y")
    running = hashlib.md5()
    for chunk in (b"x" * 4096, b"x" * 904, b"y"):
        running.update(hashlib.md5(chunk).digest())
    assert paper_folder_md5(tmp_path) == running.hexdigest()
    before = folder_md5(tmp_path)
    (tmp_path / "b" / "c.txt").rename(tmp_path / "b" / "d.txt")
    assert paper_folder_md5(tmp_path) == running.hexdigest() and folder_md5(tmp_path) != before


def test_resize_modes():
    picture = Image.new("RGB", (64, 32), (255, 0, 0))
    squash = domain_transform(CIFAR10_DOMAIN)(picture)
    crop = domain_transform(CIFAR10_DOMAIN, "crop")(picture)
    assert squash.shape == crop.shape == (3, 32, 32)
    with pytest.raises(ValueError, match="resize 'zoom' is not one of squash, crop"):
        domain_transform(CIFAR10_DOMAIN, "zoom")


def test_stanford_dogs_download_uses_the_published_archives(tmp_path, monkeypatch):
    import datasets.stanford_dogs as dogs_module

    calls = []

    def fake_download(url, root, filename, md5):
        calls.append((filename, md5))
        if filename == "images.tar":
            made = make_tiny_stanford_dogs(Path(root).parent)
            for key, value in {**made["file_md5"], **made["folder_md5"]}.items():
                table = sources.FILE_MD5 if key.endswith(".mat") else sources.FOLDER_MD5
                monkeypatch.setitem(table, key, value)

    monkeypatch.setattr(dogs_module, "download_and_extract_archive", fake_download)
    request = DataRequest(CIFAR10_DOMAIN, data_root=tmp_path, split="train", download=True)
    assert len(build_dataset("stanford_dogs", request)) == 6
    assert calls == [("images.tar", "1bb1f2a596ae7057f99d7d75860002ef")]  # lists came with it here


def test_failed_download_is_one_line(tmp_path, monkeypatch):
    def offline(url, root, filename, md5):
        raise OSError("network is unreachable")

    monkeypatch.setattr(afhq_module, "download_and_extract_archive", offline)
    with pytest.raises(DataNotFoundError, match=r"AFHQ Cats: downloading .*afhq.zip failed .*by hand"):
        build_dataset("afhq_cats", DataRequest(CIFAR10_DOMAIN, data_root=tmp_path, download=True))
