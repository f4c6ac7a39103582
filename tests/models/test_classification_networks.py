"""The classification recipe below the API: ResNet and LeNet, augmentation, one-cycle, early stopping,
resuming bit for bit with all of them, and loading a backbone for transfer learning."""

import numpy as np
import pytest
import torch

from models.classification import training
from models.classification.config import Config
from models.classification.data import ImageSet, Loaded
from models.classification.networks import LeNet, ResNet, load_backbone
from tests.workers import synthetic


def data(n: int = 64, size: int = 12, colour: bool = False, seed: int = 0) -> training.Prepared:
    x, y = synthetic.images(n, size, seed)
    x = np.repeat(x[..., None], 3 if colour else 1, axis=-1)
    return training.prepare(Config(), Loaded(synthetic.LABELS, ImageSet(x, y)))


def test_resuming_a_resnet_with_augmentation_one_cycle_and_patience_is_bit_for_bit():
    cfg = Config(arch="resnet", depth=8, width=4, epochs=2, batch_size=16, lr=0.01, scheduler="onecycle",
                 optimizer="sgd", weight_decay=5e-4, label_smoothing=0.1, flip=True, patience=3)
    d = data(colour=True)
    straight, _ = training.train(cfg, d, "cpu", lambda *_: None)
    states = []
    training.train(cfg, d, "cpu", lambda *_: None, checkpoint=states.append)
    resumed, _ = training.train(cfg, d, "cpu", lambda *_: None, resume=states[0])
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_early_stopping_stops_and_keeps_the_best_epoch():
    cfg = Config(epochs=30, batch_size=16, lr=1e-7, width=4, patience=2)  # nothing gets better
    steps = []
    model, metrics = training.train(cfg, data(), "cpu", lambda step, m: steps.append(m))
    assert metrics["epochs_run"] == 3 and metrics["best_epoch"] == 1
    assert max(m["epoch"] for m in steps) == 3
    assert training.evaluate(model, data(), "cpu")["accuracy"] == pytest.approx(metrics["val_accuracy"])


def test_augmentation_crops_and_flips_reproducibly():
    d = data(colour=True)
    aug = training._Augment(Config(crop_padding=2, flip=True), d)
    x = torch.from_numpy(d.train.x[:8])
    a = aug(x, torch.Generator().manual_seed(1))
    b = aug(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and a.dtype == torch.uint8 and torch.equal(a, b) and not torch.equal(a, x)
    grey = training._Augment(Config(), data())
    assert (grey.pad, grey.flip) == (0, False)  # 12 // 14: digits-like grey images are left alone
    assert (training._Augment(Config(), data(size=32, colour=True)).pad, aug.flip) == (4, True)


def test_load_backbone_takes_the_backbone_and_a_new_head_where_the_classes_differ():
    torch.manual_seed(0)
    source, target = ResNet(3, 10, 4, 8), ResNet(3, 2, 4, 8)
    info = load_backbone(target, {"module." + k: v for k, v in source.state_dict().items()})
    assert info["init_head_loaded"] == 0 and info["init_tensors"] == len(source.state_dict()) - 2
    assert torch.equal(target.stem[0].weight, source.stem[0].weight)
    with pytest.raises(ValueError, match="conv1.weight"):
        load_backbone(LeNet(1, 2, (12, 12), 4), source.state_dict())
    with pytest.raises(ValueError, match="shape"):
        load_backbone(ResNet(3, 2, 8, 8), source.state_dict())


@pytest.mark.parametrize("bad", [{"depth": 10}, {"init_from": "a/../b.pt"}, {"freeze_backbone": True},
                                 {"label_smoothing": -0.1}, {"patience": 0}])
def test_config_range_checks(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        Config(**bad)
