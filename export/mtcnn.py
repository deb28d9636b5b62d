"""MTCNN (Zhang et al. 2016) P-, R- and O-Net: our network definitions, the weights that the
MIT-licensed `facenet-pytorch` wheel ships (data/pnet.pt, rnet.pt, onet.pt), and their
conversion to ONNX for the runtime's detector (microexp.edge.detect).

    python -m microexp.export.mtcnn --out edge/models/mtcnn [--wheel facenet_pytorch-*.whl]

Without --wheel the script runs `pip download facenet-pytorch --no-deps` into a temporary
folder. facenet-pytorch's code is never imported: the state dicts are read from the wheel
(a zip file) with torch.load. Inputs of all three nets: RGB, (x - 127.5) * 0.0078125, NCHW.
"""
from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path

import torch
from torch import nn


class PNet(nn.Module):
    """Proposal net, fully convolutional: (N, 3, H, W) -> box offsets (N, 4, h, w), face
    probability (N, 2, h, w); stride 2, 12x12 cells."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)
        self.conv4_2 = nn.Conv2d(32, 4, 1)

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)


class RNet(nn.Module):
    """Refinement net on 24x24 crops -> box offsets (N, 4), face probability (N, 2)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        # The weights were converted from a framework that flattens (x, y, c): transpose first.
        x = self.prelu4(self.dense4(x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)))
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)


class ONet(nn.Module):
    """Output net on 48x48 crops -> box offsets (N, 4), landmarks (N, 10) as x1..x5, y1..y5
    relative to the box, face probability (N, 2)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = self.prelu5(self.dense5(x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)


NETS = {"pnet": PNet, "rnet": RNet, "onet": ONet}
OUTPUTS = {"pnet": ["offsets", "prob"], "rnet": ["offsets", "prob"],
           "onet": ["offsets", "landmarks", "prob"]}
CROP = {"rnet": 24, "onet": 48}


def download_wheel(folder: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "facenet-pytorch", "--no-deps",
                    "--quiet", "-d", str(folder)], check=True)
    wheels = sorted(folder.glob("facenet_pytorch-*.whl"))
    if not wheels:
        raise FileNotFoundError(f"mtcnn: pip download left no facenet_pytorch wheel in {folder}")
    return wheels[-1]


def load_nets(wheel: Path):
    """Our three nets with the wheel's weights (strict: every tensor must match by name/shape)."""
    nets = {}
    with zipfile.ZipFile(wheel) as z:
        for name, cls in NETS.items():
            member = f"facenet_pytorch/data/{name}.pt"
            if member not in z.namelist():
                raise ValueError(f"mtcnn: {wheel.name} has no {member}")
            state = torch.load(io.BytesIO(z.read(member)), map_location="cpu", weights_only=True)
            net = cls()
            net.load_state_dict(state, strict=True)
            nets[name] = net.eval()
    return nets


def export_nets(nets, out_dir: Path, source: str) -> dict:
    import onnx
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, net in nets.items():
        size = CROP.get(name, 48)
        x = torch.zeros(1, 3, size, size)
        axes = {"input": {0: "batch", 2: "height", 3: "width"} if name == "pnet" else {0: "batch"}}
        for o in OUTPUTS[name]:
            axes[o] = {0: "batch", 2: "h", 3: "w"} if name == "pnet" else {0: "batch"}
        path = out_dir / f"{name}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(net, (x,), str(path), dynamo=False, opset_version=17,
                              input_names=["input"], output_names=OUTPUTS[name], dynamic_axes=axes)
        proto = onnx.load(str(path))
        for k, v in {"producer": "microexp-edge", "model": f"MTCNN {name}",
                     "weights": source, "licence": "MIT (facenet-pytorch, Copyright (c) 2019 Timothy Esler)",
                     "input": "RGB, (x - 127.5) * 0.0078125, NCHW"}.items():
            proto.metadata_props.add(key=k, value=v)
        onnx.checker.check_model(proto, full_check=True)
        onnx.save(proto, str(path))
        paths[name] = path
    return paths


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="MTCNN weights from the facenet-pytorch wheel -> ONNX")
    p.add_argument("--out", required=True, help="folder for pnet.onnx, rnet.onnx, onet.onnx")
    p.add_argument("--wheel", help="a facenet_pytorch-*.whl already downloaded")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = Path(args.wheel) if args.wheel else download_wheel(Path(tmp))
        nets = load_nets(wheel)
        paths = export_nets(nets, Path(args.out), f"{wheel.name} (facenet_pytorch/data/*.pt)")
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
