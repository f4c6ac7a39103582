"""The classification networks (torch): a LeNet-5 style CNN (the baseline), a CIFAR-style ResNet, and
airbench94's network (AirNet), plus TestTimeViews, which averages a network's logits over mirrored and
shifted copies of the image and is what gets exported when a run asks for test-time views.

Each names its classifier layer in HEAD: transfer learning (init_from) loads every other tensor, the
backbone, and a new head where the number of classes differs; freeze_backbone trains the head only.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.classification.config import MIN_SIDE as MIN_SIDES


class LeNet(nn.Module):
    HEAD = "fc2"

    def __init__(self, channels: int, classes: int, size: tuple[int, int], width: int = 32):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, width, 5, padding=2)
        self.conv2 = nn.Conv2d(width, 2 * width, 5, padding=2)
        self.fc1 = nn.Linear(2 * width * (size[0] // 4) * (size[1] // 4), 128)
        self.fc2 = nn.Linear(128, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [N, C, H, W], normalised
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # [N, w, H/2, W/2]
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # [N, 2w, H/4, W/4]
        x = F.relu(self.fc1(torch.flatten(x, 1)))  # [N, 128]
        return self.fc2(x)  # [N, K] logits


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:  # a 1x1 projection where the shape changes
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """He et al.'s CIFAR ResNet: a 3x3 stem, 3 stages of n blocks (width w, 2w, 4w; stride 1, 2, 2),
    global average pooling, a linear head. depth = 6n + 2 (20 -> n = 3)."""

    HEAD = "head"

    def __init__(self, channels: int, classes: int, width: int = 32, depth: int = 20):
        super().__init__()
        n = (depth - 2) // 6
        self.stem = nn.Sequential(nn.Conv2d(channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU(inplace=True))
        blocks, cin = [], width
        for stage, cout in enumerate((width, 2 * width, 4 * width)):
            for i in range(n):
                blocks.append(BasicBlock(cin, cout, 2 if stage > 0 and i == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(cin, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for b in blocks:  # each residual branch starts as the identity: trains faster, deeper
            nn.init.zeros_(b.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [N, C, H, W], normalised
        x = self.blocks(self.stem(x))  # [N, 4w, H/4, W/4]
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))  # [N, K] logits


class _ConvGroup(nn.Module):
    """conv -> 2x2 max pool -> BN -> GELU -> conv -> BN -> GELU. Batch norm keeps its scale at 1 (only the
    bias learns), and each conv starts as the identity on its first input-many channels: a residual
    connection without the branch (airbench)."""

    def __init__(self, cin: int, cout: int, bn_momentum: float):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.norm1 = _norm(cout, bn_momentum)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.norm2 = _norm(cout, bn_momentum)
        for conv in (self.conv1, self.conv2):
            with torch.no_grad():
                nn.init.dirac_(conv.weight[:conv.in_channels])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.norm1(F.max_pool2d(self.conv1(x), 2)))
        return F.gelu(self.norm2(self.conv2(x)))


def _norm(channels: int, momentum: float) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels, eps=1e-12, momentum=momentum)
    bn.weight.requires_grad_(False)
    return bn


class AirNet(nn.Module):
    """Keller Jordan's airbench94 network (arXiv:2404.00498): a 2x2 conv whose weights whiten the image's
    patches (set once from training images by init_whitening, then frozen; its bias trains for the first
    epochs only), three conv groups of width w, 4w, 4w each halving the side, a global max pool, and a linear
    head scaled by 1/9. Images of at least 16x16 (32x32 CIFAR: 31 -> 15 -> 7 -> 3)."""

    HEAD = "head"
    WHITEN_BIAS_EPOCHS = 3
    MIN_SIDE = MIN_SIDES["airbench"]

    def __init__(self, channels: int, classes: int, width: int = 64, bn_momentum: float = 0.4):
        super().__init__()
        self.whiten = nn.Conv2d(channels, 2 * channels * 4, 2, bias=True)
        self.whiten.weight.requires_grad_(False)
        nn.init.zeros_(self.whiten.bias)
        self.blocks = nn.Sequential(_ConvGroup(self.whiten.out_channels, width, bn_momentum),
                                    _ConvGroup(width, 4 * width, bn_momentum),
                                    _ConvGroup(4 * width, 4 * width, bn_momentum))
        self.head = nn.Linear(4 * width, classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [N, C, H, W], normalised
        x = self.blocks(F.gelu(self.whiten(x)))
        return self.head(torch.flatten(F.adaptive_max_pool2d(x, 1), 1)) / 9  # [N, K] logits

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float = 5e-4, chunk: int = 500) -> None:
        """Sets the frozen conv to the eigenvectors of the 2x2 patch covariance of `images` (normalised
        [N, C, H, W]), each scaled by 1 / sqrt(eigenvalue + eps), and their negatives (GELU keeps both
        signs). Largest eigenvalue first."""
        c, (kh, kw) = images.shape[1], self.whiten.kernel_size
        cov, count = torch.zeros(c * kh * kw, c * kh * kw, dtype=torch.float64), 0
        for part in images.split(chunk):
            patches = part.unfold(2, kh, 1).unfold(3, kw, 1)  # [n, C, H', W', kh, kw]
            flat = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * kh * kw).double()
            cov += flat.T @ flat
            count += flat.shape[0]
        values, vectors = torch.linalg.eigh(cov / count)
        values, vectors = values.flip(0), vectors.T.flip(0)
        w = (vectors / torch.sqrt(values.clamp_min(0) + eps)[:, None]).reshape(-1, c, kh, kw)
        self.whiten.weight.copy_(torch.cat([w, -w]).to(self.whiten.weight.dtype))


class TestTimeViews(nn.Module):
    """The logits of a network averaged over views of the image: "flip" (it and its mirror) or
    "flip_translate" (airbench's: half weight on those two, a quarter each on the mirrored pair shifted 1 px
    up-left and 1 px down-right, reflect-padded). The wrapped network is `module`, so its state dict keys
    start "module." and load_backbone reads them."""

    def __init__(self, module: nn.Module, views: str):
        super().__init__()
        if views not in ("flip", "flip_translate"):
            raise ValueError(f"unknown test-time views {views!r}")
        self.module, self.views = module, views

    def _mirrored(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self.module(x) + self.module(x.flip(-1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self._mirrored(x)
        if self.views == "flip_translate":
            h, w = x.shape[-2:]
            padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
            shifted = self._mirrored(padded[:, :, :h, :w]) + self._mirrored(padded[:, :, 2:, 2:])
            logits = 0.5 * logits + 0.25 * shifted
        return logits


def is_head(model: nn.Module, key: str) -> bool:
    return key.startswith(f"{model.HEAD}.")


def load_backbone(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, int]:
    """Copies the backbone (every tensor but the head's) from a state dict; the head too where its shape
    fits. Every backbone tensor must be there with the same shape: a partial load would go unnoticed."""
    if isinstance(state.get("model"), dict):  # a whole checkpoint of this family
        state = state["model"]
    state = {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in state.items()}
    own = model.state_dict()
    loaded, head = {}, 0
    for key, mine in own.items():
        theirs = state.get(key)
        if is_head(model, key):
            if theirs is not None and tuple(theirs.shape) == tuple(mine.shape):
                loaded[key] = theirs
                head += 1
            continue
        if theirs is None:
            raise ValueError(f"the weights have no tensor {key!r} that this {type(model).__name__} needs "
                             f"(they hold {len(state)} tensors, e.g. {sorted(state)[:3]}); "
                             "were they trained with the same arch, width and depth?")
        if tuple(theirs.shape) != tuple(mine.shape):
            raise ValueError(f"tensor {key!r} has shape {list(theirs.shape)} in the weights but "
                             f"{list(mine.shape)} here; train with the same arch, width, depth and channels")
        loaded[key] = theirs
    model.load_state_dict({**own, **{k: v.to(own[k].dtype) for k, v in loaded.items()}})
    return {"init_tensors": len(loaded), "init_head_loaded": int(head > 0)}


def freeze_backbone(model: nn.Module) -> None:
    for name, p in model.named_parameters():
        p.requires_grad_(is_head(model, name))


def set_train_mode(model: nn.Module, frozen_backbone: bool) -> None:
    """train() mode, except a frozen backbone's batch-norm statistics stay as loaded."""
    model.train()
    if frozen_backbone:
        for name, m in model.named_children():
            if name != model.HEAD:
                m.eval()
