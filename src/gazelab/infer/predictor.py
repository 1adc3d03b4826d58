"""Image inference: encode a picture once, then ask about as many people on it as wanted.

The backbone is by far the costly part of every model, so :meth:`Predictor.set_image` runs it once and
:meth:`Predictor.predict` only runs the decoder, for all the given people in one batch. The predictor works
with any :class:`~gazelab.models.base.GazeModel`; it never looks at the family.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from pathlib import Path

import torch
from torch import Tensor

from gazelab.data.targets import heatmap_argmax_point
from gazelab.errors import GazelabError
from gazelab.io import load_image
from gazelab.models.base import GazeModel, GazeOutput, HeadLike, ImageLike, head_boxes
from gazelab.models.vocab import Vocabulary
from gazelab.types import Box, GazePrediction

ImageSource = ImageLike | str | Path
"""A picture in memory, or the path of an image file (EXIF orientation applied)."""

PRECISIONS = ("fp32", "bf16")


def check_precision(precision: str) -> None:
    """A one-line error for an unknown precision name (the CLI checks before loading any model)."""
    if precision not in PRECISIONS:
        raise GazelabError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")


def has_fast_bf16(device: torch.device) -> bool:
    """Whether ``device`` runs bf16 matmuls and convolutions natively (CUDA from Ampere on; CPUs with AVX512-BF16
    or AMX). Elsewhere torch emulates bf16: same numbers, slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def precision_context(precision: str, device: torch.device) -> Callable[[], AbstractContextManager]:
    """What the image encoder runs under: nothing for fp32 (exact), bf16 autocast where the hardware has bf16
    kernels.

    Autocast rather than converting the weights: matmuls and convolutions run in bf16 while normalisations and
    softmax stay float32. Without native bf16 (oneDNN on CPUs without AVX512-BF16/AMX, GPUs before Ampere) bf16
    would be slower than fp32, so that is an error rather than a silent slowdown.
    """
    check_precision(precision)
    if precision == "fp32":
        return nullcontext
    if not has_fast_bf16(device):
        raise GazelabError(f"this {device.type} has no fast bf16 kernels: use precision='fp32'")
    return partial(torch.autocast, device.type, dtype=torch.bfloat16)


def _load(image: ImageSource) -> ImageLike:
    return load_image(image) if isinstance(image, (str, Path)) else image


def _head_list(heads: Sequence[HeadLike] | Box | None) -> list[HeadLike]:
    """``None`` -> one person without a box; a single Box -> that person; else the sequence as given."""
    if heads is None:
        return [None]
    if isinstance(heads, Box):
        return [heads]
    return list(heads)


def _as_box(head: HeadLike) -> Box | None:
    if head is None or isinstance(head, Box):
        return head
    return Box(*(float(v) for v in head))


def _predictions(
    output: GazeOutput, heads: Sequence[HeadLike], vocabulary: Vocabulary | None = None
) -> list[GazePrediction]:
    """One :class:`GazePrediction` per person; heatmaps become CPU float32 numpy arrays. With a vocabulary, a
    semantic model's label embeddings become each person's top-3 labels."""
    heatmaps = output.heatmap.float().cpu()
    points = heatmap_argmax_point(heatmaps).tolist()
    inout = output.inout.float().cpu().tolist() if output.inout is not None else [None] * len(heads)
    vectors = output.gaze_vector.float().cpu().tolist() if output.gaze_vector is not None else [None] * len(heads)
    labels: list[tuple] = [()] * len(heads)
    if vocabulary is not None and output.label_embedding is not None:
        labels = vocabulary.top(output.label_embedding, k=3)
    return [
        GazePrediction(
            heatmap=heatmaps[i].numpy(),
            point=(points[i][0], points[i][1]),
            inout=inout[i],
            head=_as_box(head),
            gaze_vector=None if vectors[i] is None else (vectors[i][0], vectors[i][1]),
            labels=labels[i],
        )
        for i, head in enumerate(heads)
    ]


class Predictor:
    """Where people in a picture look, with any gazelab model.

    >>> predictor = Predictor(create_model("gazelle_dinov2_vitb14_inout", pretrained=True))
    >>> predictor.set_image("photo.jpg")
    >>> first, second = predictor.predict([(0.1, 0.2, 0.2, 0.35), (0.6, 0.1, 0.7, 0.3)])
    """

    def __init__(
        self,
        model: GazeModel,
        device: str | torch.device | None = None,
        vocabulary: Vocabulary | None = None,
        *,
        precision: str = "fp32",
        compile: bool = False,
        channels_last: bool = False,
    ) -> None:
        """``vocabulary``: class names a semantic model's predictions are labelled with (see
        :func:`gazelab.models.vocab.build_vocabulary`).

        Fast paths (see ``docs/performance.md``): ``precision="bf16"`` runs the image encoder under bf16 autocast
        (faster than fp32 where bf16 matmuls are: CPUs with AMX, recent GPUs; on AVX512-BF16 without AMX, as on the
        development machine, bf16 GEMMs run at about half the fp32 rate and the path is slower — measure with
        benchmarks/predict_speed.py) and the decoder in fp32: the decoder is a few
        percent of the work but decides the argmax, and in bf16 it flipped the argmax cell of flat heatmaps (81%
        agreement vs 100% on ViT-B, see benchmarks/predict_speed.py). ``compile=True`` wraps encode and
        decode in ``torch.compile`` (the first calls compile), ``channels_last`` stores convolution inputs
        NHWC (helps the ResNet families; Gaze-LLE has one convolution). The defaults are the exact fp32 path.
        """
        if vocabulary is not None and not getattr(model, "predicts_labels", False):
            raise GazelabError(f"{type(model).__name__} predicts no labels: --labels needs a semantic model (SemGaze)")
        self.model = model.eval() if device is None else model.to(device).eval()
        self.vocabulary = vocabulary
        self._precision = precision_context(precision, self.model.device)
        self._channels_last = channels_last
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        # Freezing: the weights become constants of the compiled graph, so Inductor pre-packs them for oneDNN and
        # folds what depends only on them (the model must not be changed after the first call).
        frozen = {"freezing": True}
        self._encode = torch.compile(self.model.encode, options=frozen) if compile else self.model.encode
        self._decode = torch.compile(self.model.decode, dynamic=True, options=frozen) if compile else self.model.decode
        self._image: ImageLike | None = None
        self._features: Tensor | None = None

    @torch.inference_mode()
    def set_image(self, image: ImageSource) -> None:
        """Encode ``image`` (PIL, ``HxWx3`` uint8 array, ``3xHxW`` uint8 tensor, or a path) for later queries."""
        self._image = _load(image)
        self._features = self._encode_images(self.model.prepare_images([self._image]))

    def _encode_images(self, images: Tensor) -> Tensor:
        if self._channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with self._precision():
            return self._encode(images).float()

    @torch.inference_mode()
    def predict(self, heads: Sequence[HeadLike] | Box | None = None) -> list[GazePrediction]:
        """One prediction per head box (normalized xyxy ``Box`` or 4-tuple, or None for an unknown box).

        ``heads=None`` asks about one person without a box — enough when the picture shows one person.
        """
        if self._features is None:
            raise GazelabError("no image set: call set_image(image) before predict(heads)")
        people = _head_list(heads)
        boxes, image_index = head_boxes([people])
        output = self._decode(self._features, self.model.prepare_people(boxes, image_index, [self._image]))
        return _predictions(output, people, self.vocabulary)

    @torch.inference_mode()
    def predict_batch(
        self, images: Sequence[ImageSource], heads_per_image: Sequence[Sequence[HeadLike] | Box | None]
    ) -> list[list[GazePrediction]]:
        """Several pictures in one forward pass; one list of predictions per picture, in order."""
        if len(images) != len(heads_per_image):
            raise GazelabError(f"got {len(images)} images but head lists for {len(heads_per_image)}")
        pictures = [_load(image) for image in images]
        heads = [_head_list(h) for h in heads_per_image]
        inputs = self.model.prepare(pictures, heads)
        output = self._decode(self._encode_images(inputs.images), inputs.people)
        flat = _predictions(output, [h for hs in heads for h in hs], self.vocabulary)
        result, start = [], 0
        for people in heads:
            result.append(flat[start : start + len(people)])
            start += len(people)
        return result
