"""ONNX export of Gaze-LLE as two graphs: the backbone (once per image) and the decoder (once per set of people).

Splitting the model the way :class:`~gazelab.infer.predictor.Predictor` uses it keeps the main saving in every
runtime: a picture is encoded once and any number of people are queried on its features. The decoder graph
takes the head boxes themselves and builds the 32x32 head maps inside the graph (round half to even, as the
model does in float64), so an ONNX user needs no gazelab code beyond resizing and normalising the picture.

Files written to the output folder:

- ``backbone.onnx``: ``images`` [B, 3, S, S] float32 (normalised, ``S = input_size``) -> ``features``
  [B, C, S / 14, S / 14].
- ``decoder.onnx``: ``features``, ``boxes`` [P, 4] float64 normalised xyxy (a NaN row: no head box),
  ``image_index`` [P] int64 -> ``heatmap`` [P, 64, 64] (and ``inout`` [P] for in/out models). ``B`` and ``P``
  are dynamic.
- ``gazelab_onnx.json``: model name, input size, normalisation mean/std, resize rule, opset, output names.

The TorchScript-based exporter is used (``dynamo=False``): it needs no extra package beyond ``onnx`` and
handles the dynamic people axis of this model directly.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from gazelab.data.targets import head_token_map, heatmap_argmax_point
from gazelab.errors import GazelabError
from gazelab.infer.predictor import ImageSource, Predictor, _as_box, _head_list, _load
from gazelab.models.base import HeadLike, People, head_boxes
from gazelab.models.gazelle import IMAGENET_MEAN, IMAGENET_STD, GazeLLE, prepare_gazelle_images
from gazelab.types import Box, GazePrediction

OPSET = 18
"""Supported by the TorchScript exporter and by every onnxruntime >= 1.14 (the ``export`` extra asks 1.18)."""
BACKBONE_FILE, DECODER_FILE, META_FILE = "backbone.onnx", "decoder.onnx", "gazelab_onnx.json"


class _Backbone(nn.Module):
    """``model.encode`` as a module, so the backbone graph is exactly what the Predictor runs once per image.

    The input size is fixed, so the resampled position embedding is a constant of the graph: it is computed
    here in eager mode (the tracer cannot follow DINOv2's size-dependent bicubic resampling).
    """

    def __init__(self, model: GazeLLE) -> None:
        super().__init__()
        self.model = model
        with torch.no_grad():
            self.register_buffer("positions", model.backbone.position_embedding(*model.grid).detach().clone())

    def forward(self, images: Tensor) -> Tensor:
        backbone = self.model.backbone
        backbone.position_embedding = lambda rows, cols: self.positions  # instance attribute, removed below
        try:
            return self.model.encode(images)
        finally:
            del backbone.position_embedding


class _Decoder(nn.Module):
    """The decoder as one graph: head boxes -> head maps -> :meth:`GazeLLE.decode`."""

    def __init__(self, model: GazeLLE) -> None:
        super().__init__()
        self.model = model

    def forward(self, features: Tensor, boxes: Tensor, image_index: Tensor) -> tuple[Tensor, ...]:
        head_maps = head_token_map(boxes, self.model.grid[0])
        output = self.model.decode(features, People(boxes.float(), image_index, {"head_maps": head_maps}))
        return (output.heatmap,) if output.inout is None else (output.heatmap, output.inout)


@dataclass(frozen=True)
class OnnxExport:
    """What :func:`export_onnx` wrote."""

    backbone: Path
    decoder: Path
    meta: Path


def export_onnx(model: GazeLLE, out: Path, name: str) -> OnnxExport:
    """Write ``backbone.onnx``, ``decoder.onnx`` and ``gazelab_onnx.json`` for a Gaze-LLE ``model`` to ``out``."""
    if not isinstance(model, GazeLLE):
        raise GazelabError(
            f"ONNX export supports the Gaze-LLE models (gazelle_*); {name} is a {type(model).__name__}, whose "
            "people inputs (head crops from the picture) are not part of a features-only decoder graph"
        )
    if model.cfg.head_crop:
        raise GazelabError(f"{name} reads head crops from the picture (head_crop), which a features-only decoder "
                           "graph has no input for; export a Gaze-LLE model without head_crop")  # fmt: skip
    try:
        import onnx  # noqa: F401  (the exporter needs it; fail with the fix, not deep inside torch)
    except ImportError:
        raise GazelabError("ONNX export needs the onnx package: pip install 'gazelab[export]'") from None
    out.mkdir(parents=True, exist_ok=True)
    model = model.cpu().float().eval()
    size = model.cfg.in_size
    images = torch.zeros(2, 3, size, size)
    with torch.no_grad():
        features = model.encode(images[:1])
    boxes = torch.tensor([[0.1, 0.1, 0.3, 0.3], [0.5, 0.2, 0.6, 0.4], [np.nan] * 4], dtype=torch.float64)
    image_index = torch.zeros(3, dtype=torch.long)
    outputs = ["heatmap", "inout"] if model.has_inout else ["heatmap"]
    result = OnnxExport(out / BACKBONE_FILE, out / DECODER_FILE, out / META_FILE)
    with warnings.catch_warnings():  # the exporter's deprecation and tracer notes say nothing to the user
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Backbone(model), (images,), str(result.backbone), input_names=["images"], output_names=["features"],
            dynamic_axes={"images": {0: "images"}, "features": {0: "images"}}, opset_version=OPSET, dynamo=False,
        )  # fmt: skip
        torch.onnx.export(
            _Decoder(model), (features, boxes, image_index), str(result.decoder),
            input_names=["features", "boxes", "image_index"], output_names=outputs,
            dynamic_axes={"features": {0: "images"}, "boxes": {0: "people"}, "image_index": {0: "people"},
                          **{o: {0: "people"} for o in outputs}},
            opset_version=OPSET, dynamo=False,
        )  # fmt: skip
    meta = {
        "model": name,
        "input_size": size,
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "preprocess": "RGB/255, (x - mean) / std, then bilinear antialiased resize to input_size x input_size",
        "heatmap_size": model.cfg.out_size,
        "opset": OPSET,
        "decoder_outputs": outputs,
    }
    result.meta.write_text(json.dumps(meta, indent=2) + "\n")
    return result


class OnnxPredictor:
    """:class:`~gazelab.infer.predictor.Predictor`'s ``set_image`` / ``predict`` on exported graphs (onnxruntime).

    Preprocessing is the PyTorch model's own function, so both paths see identical input tensors.
    """

    def __init__(self, folder: Path | str, providers: Sequence[str] = ("CPUExecutionProvider",)) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise GazelabError("ONNX inference needs onnxruntime: pip install 'gazelab[export]'") from None
        folder = Path(folder)
        meta_path = folder / META_FILE
        if not meta_path.is_file():
            raise GazelabError(f"{meta_path} not found: export a model first with `gazelab export --out {folder}`")
        self.meta = json.loads(meta_path.read_text())
        self.backbone = onnxruntime.InferenceSession(str(folder / BACKBONE_FILE), providers=list(providers))
        self.decoder = onnxruntime.InferenceSession(str(folder / DECODER_FILE), providers=list(providers))
        self._features: np.ndarray | None = None

    def set_image(self, image: ImageSource) -> None:
        """Encode ``image`` (as :meth:`Predictor.set_image`)."""
        images = prepare_gazelle_images([_load(image)], self.meta["input_size"], torch.device("cpu")).numpy()
        self._features = self.backbone.run(["features"], {"images": images})[0]

    def predict(self, heads: Sequence[HeadLike] | Box | None = None) -> list[GazePrediction]:
        """One prediction per head box (as :meth:`Predictor.predict`)."""
        if self._features is None:
            raise GazelabError("no image set: call set_image(image) before predict(heads)")
        people = _head_list(heads)
        boxes, image_index = head_boxes([people])
        feeds = {"features": self._features, "boxes": boxes.numpy(), "image_index": image_index.numpy()}
        outputs = self.decoder.run(self.meta["decoder_outputs"], feeds)
        heatmaps = torch.from_numpy(outputs[0])
        points = heatmap_argmax_point(heatmaps).tolist()
        inout = outputs[1].tolist() if len(outputs) > 1 else [None] * len(people)
        return [
            GazePrediction(
                heatmap=outputs[0][i], point=(points[i][0], points[i][1]), inout=inout[i], head=_as_box(head)
            )
            for i, head in enumerate(people)
        ]


def compare_with_torch(model: GazeLLE, folder: Path, people: int = 3, seed: int = 0) -> float:
    """Largest difference of heatmaps and in/out scores between the exported graphs and PyTorch (fp32).

    Run on a seeded random 320x240 picture with ``people`` people, the last of them without a head box.
    """
    picture = np.random.default_rng(seed).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    heads: list[HeadLike] = [(0.05 + 0.3 * i, 0.1, 0.2 + 0.3 * i, 0.3) for i in range(people - 1)] + [None]
    results = []
    for predictor in (Predictor(model), OnnxPredictor(folder)):
        predictor.set_image(picture)
        results.append(predictor.predict(heads))
    difference = 0.0
    for ours, theirs in zip(*results, strict=True):
        difference = max(difference, float(np.abs(ours.heatmap - theirs.heatmap).max()))
        if ours.inout is not None:
            difference = max(difference, abs(ours.inout - theirs.inout))
    return difference
