"""Architectures: state-dict layouts equal the paper's checkpoints; forward shapes; resnet50 init."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.models import resnet50 as torchvision_resnet50

from models import build_model, model_names
from models.efficient_net import Block
from utils.seeding import seeded

REFERENCE = Path(__file__).resolve().parent / "data"  # the published state-dict layouts (keys and shapes)
PAPER_ARCHS = ["resnet18", "efficient_net", "salem_cnn_relu"]




def read_layout(path: Path) -> dict[str, tuple[int, ...]]:
    """``{key: shape}`` from a ``key<TAB>(d0, d1, ...)`` listing, in file order."""
    layout = {}
    for line in path.read_text().splitlines():
        if line.strip():
            key, shape = line.split("\t")
            layout[key] = tuple(int(d) for d in shape.strip("()").split(",") if d.strip())
    return layout


@pytest.mark.parametrize("arch", PAPER_ARCHS)
def test_state_dict_equals_the_papers_checkpoint_layout(arch):
    path = REFERENCE / f"{arch}_cifar10_state_dict.txt"
    model = build_model(arch, num_classes=10, in_channels=3, image_size=32)
    layout = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    assert layout == read_layout(path)
    assert list(layout) == list(read_layout(path))


@pytest.mark.parametrize("arch", PAPER_ARCHS)
@pytest.mark.parametrize("in_channels,image_size", [(3, 32), (1, 16)])
def test_forward_shape_follows_the_data_set(arch, in_channels, image_size):
    model = build_model(arch, num_classes=7, in_channels=in_channels, image_size=image_size).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, in_channels, image_size, image_size))
    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()


def test_all_paper_architectures_are_registered():
    assert {"resnet18", "efficient_net", "salem_cnn_relu", "resnet50", "small_cnn"} <= set(model_names())


def test_salem_cnn_flatten_size_depends_on_image_size():
    model = build_model("salem_cnn_relu", num_classes=10, in_channels=1, image_size=28)
    assert model.model[7].in_features == 32 * 7 * 7
    with pytest.raises(ValueError, match="image_size"):
        build_model("salem_cnn_relu", num_classes=10, image_size=2)


def test_efficient_net_drop_connect_only_scales_in_training():
    block = Block(16, 16, 3, 1, expand_ratio=2, drop_rate=0.5).eval()
    x = torch.randn(4, 16, 8, 8)
    with torch.no_grad():
        assert torch.equal(block(x), block(x))
        block.train()
        with seeded(0):
            assert block(x).shape == x.shape


def test_resnet50_replaces_the_classifier_and_accepts_small_images():
    model = build_model("resnet50", num_classes=120, in_channels=3, image_size=64).eval()
    assert model.fc.out_features == 120
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 120)
    grey = build_model("resnet50", num_classes=5, in_channels=1, image_size=64)
    assert grey.conv1.in_channels == 1 and grey.fc.out_features == 5


@pytest.fixture(scope="module")
def imagenet_weights(tmp_path_factory) -> tuple[Path, dict]:
    """A fresh torchvision resnet50 state dict written where the hub cache would keep it."""
    directory = tmp_path_factory.mktemp("hub") / "checkpoints"
    directory.mkdir()
    with seeded(0):
        state = torchvision_resnet50(weights=None).state_dict()
    path = directory / "resnet50-0676ba61.pth"
    torch.save(state, path)
    return path, state


def test_resnet50_pretrained_without_weights_fails_in_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(FileNotFoundError) as error:
        build_model("resnet50", num_classes=120, pretrained=True)
    message = str(error.value)
    assert "\n" not in message and str(tmp_path / "checkpoints") in message and "weights_path" in message
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_model("resnet50", num_classes=120, weights_path=tmp_path / "absent.pth")


def test_resnet50_loads_local_imagenet_weights(imagenet_weights, monkeypatch):
    path, state = imagenet_weights
    model = build_model("resnet50", num_classes=120, pretrained=True, weights_path=path)
    assert torch.equal(model.conv1.weight, state["conv1.weight"])
    assert torch.equal(model.layer4[2].bn3.running_var, state["layer4.2.bn3.running_var"])
    assert model.fc.out_features == 120
    # the same file found in the torch hub cache, without weights_path
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(path.parent.parent))
    cached = build_model("resnet50", num_classes=120, pretrained=True)
    assert torch.equal(cached.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])


def test_resnet50_pretrained_needs_three_channels(imagenet_weights):
    with pytest.raises(ValueError, match="in_channels=1"):
        build_model("resnet50", num_classes=10, in_channels=1, weights_path=imagenet_weights[0])


def test_resnet50_reports_unusable_weights(tmp_path):
    path = tmp_path / "resnet50-broken.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="resnet50 ImageNet weights unusable: .*missing keys"):
        build_model("resnet50", num_classes=10, weights_path=path)
