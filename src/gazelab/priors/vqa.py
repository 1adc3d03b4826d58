"""VQA Grad-CAM priors: ask a generative VQA model what a person looks at, then find where it looked.

:class:`GradCamPrior` is model-agnostic: it loads each frame once per batch, draws the person's box in green
(2 px), asks the question, and turns the backend's 64x64 maps into :class:`PriorRecord` s. A backend
(:class:`VqaGradCam`) answers and explains a batch of images; :class:`BlipVqaGradCam` implements it with
Hugging Face ``transformers`` BLIP VQA (``Salesforce/blip-vqa-base`` by default).

Where BLIP looks. BLIP VQA differs from OFA (the reference's model) in one respect that matters here: its
answer decoder cross-attends to the *question* encoding, and only the question encoder cross-attends to the
image patches. The CAM is therefore taken on the question encoder's cross-attention (at ``settings.layers``,
default the last three), with the gradient of the answer's key-noun score flowing back through the decoder;
it is averaged over the question tokens. Per person: decode the answer (beam search), find the key noun
(:mod:`gazelab.priors.keynoun`), map it to its sub-word tokens with the tokenizer's offsets, teacher-force
``[BOS] + answer`` up to the noun and back-propagate the sum of its sub-tokens' log-probabilities (the log of
the word's probability: the same direction as the probability's gradient, and min-max normalisation removes
the scale).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

from gazelab.errors import GazelabError
from gazelab.io import load_image
from gazelab.priors.gradcam import CamSettings, attention_cam, grid_heatmaps, select_layers
from gazelab.priors.keynoun import key_noun
from gazelab.priors.store import SIZE, PriorRecord, person_key
from gazelab.types import Box, Frame, Person

DEFAULT_QUESTION = CamSettings().question
GREEN = (0, 255, 0)
HEAD_EXPAND = 1.5


class VqaGradCam(ABC):
    """A generative VQA model that can explain its answers (add other models by implementing this)."""

    @abstractmethod
    def explain(
        self, images: Sequence[Image.Image], question: str, answers: Sequence[str] | None = None
    ) -> tuple[list[str], Tensor, Tensor]:
        """Answer ``question`` for each image (or take the given ``answers``) and return (answers,
        [B, 64, 64] maps in [0, 1] of where the key noun came from, [B] bool: map usable)."""


class BlipVqaGradCam(VqaGradCam):
    """Grad-CAM of a ``BlipForQuestionAnswering`` model (see the module docstring for what is explained)."""

    def __init__(self, model: Any, processor: Any, settings: CamSettings | None = None) -> None:
        self.model = model.eval()
        self.processor = processor
        self.settings = settings or CamSettings()
        blocks = model.text_encoder.encoder.layer
        self.layers = select_layers(self.settings.layers, len(blocks))
        self._attention = [blocks[i].crossattention.self for i in self.layers]

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _encode(self, images: Sequence[Image.Image], question: str) -> tuple[Tensor, Tensor, list[Tensor]]:
        """Question encoding [B, Q, D] (with grad), its mask, and the chosen layers' cross-attention maps."""
        inputs = self.processor(images=list(images), text=[question] * len(images), return_tensors="pt")
        inputs = inputs.to(self.device)
        with torch.no_grad():  # no gradient is needed inside the vision tower
            image_embeds = self.model.vision_model(pixel_values=inputs["pixel_values"])[0]
        captured: list[Tensor] = []
        hooks = [a.register_forward_hook(lambda _m, _i, out: captured.append(out[1])) for a in self._attention]
        try:
            with torch.enable_grad():
                encoded = self.model.text_encoder(
                    input_ids=inputs["input_ids"],
                    attention_mask=inputs["attention_mask"],
                    encoder_hidden_states=image_embeds,
                    encoder_attention_mask=torch.ones(image_embeds.shape[:2], dtype=torch.long, device=self.device),
                )[0]
        finally:
            for hook in hooks:
                hook.remove()
        return encoded, inputs["attention_mask"], captured

    def _generate(self, encoded: Tensor, mask: Tensor) -> list[str]:
        config = self.model.config.text_config
        start = torch.full((encoded.shape[0], 1), self.model.decoder_start_token_id, device=self.device)
        tokens = self.model.text_decoder.generate(
            input_ids=start,
            eos_token_id=config.sep_token_id,
            pad_token_id=config.pad_token_id,
            encoder_hidden_states=encoded.detach(),
            encoder_attention_mask=mask,
            num_beams=self.settings.num_beams,
            max_new_tokens=self.settings.max_answer_tokens,
            do_sample=False,
        )
        return [a.strip() for a in self.processor.batch_decode(tokens, skip_special_tokens=True)]

    def _key_tokens(self, answer: str) -> tuple[list[int], range] | None:
        """Answer token ids and the positions of the key noun's sub-word tokens (None: no key noun)."""
        noun = key_noun(answer)
        if noun is None:
            return None
        encoded = self.processor.tokenizer(answer, add_special_tokens=False, return_offsets_mapping=True)
        spans = [i for i, (s, e) in enumerate(encoded["offset_mapping"]) if s < noun.end and e > noun.start]
        if not spans:
            return None
        return encoded["input_ids"], range(spans[0], spans[-1] + 1)

    def explain(
        self, images: Sequence[Image.Image], question: str, answers: Sequence[str] | None = None
    ) -> tuple[list[str], Tensor, Tensor]:
        encoded, mask, attentions = self._encode(images, question)
        answers = list(answers) if answers is not None else self._generate(encoded, mask)
        keys = [self._key_tokens(a) for a in answers]
        usable = torch.tensor([k is not None for k in keys], device=self.device)
        if not usable.any():
            return answers, torch.zeros(len(images), SIZE, SIZE), usable.cpu()
        # Teacher forcing: [BOS] + answer tokens up to the end of the key noun, right-padded.
        length = 1 + max(k[1].stop for k in keys if k is not None)
        pad, bos = self.model.config.text_config.pad_token_id, self.model.decoder_start_token_id
        ids = torch.full((len(images), length), pad, dtype=torch.long, device=self.device)
        ids[:, 0] = bos
        for b, key in enumerate(keys):
            if key is not None:
                ids[b, 1 : 1 + key[1].stop] = torch.tensor(key[0][: key[1].stop], device=self.device)
        with torch.enable_grad():
            logits = self.model.text_decoder(
                input_ids=ids,
                attention_mask=(ids != pad).long(),
                encoder_hidden_states=encoded,
                encoder_attention_mask=mask,
            ).logits
            log_probs = logits.float().log_softmax(dim=-1)
            # Token i of the answer sits at position i + 1 and is predicted at position i.
            score = sum(log_probs[b, i, key[0][i]] for b, key in enumerate(keys) if key is not None for i in key[1])
            grads = torch.autograd.grad(score, attentions)
        cam = attention_cam([a.detach() for a in attentions], grads, mask)
        maps, valid = grid_heatmaps(cam)
        return answers, maps.cpu(), (valid & usable).cpu()


def load_blip(model_id: str, device: str = "cpu", settings: CamSettings | None = None) -> BlipVqaGradCam:
    """A BLIP VQA model and processor by Hugging Face id or local folder (downloaded once into the HF cache)."""
    from transformers import BlipForQuestionAnswering, BlipProcessor

    try:
        processor = BlipProcessor.from_pretrained(model_id)
        model = BlipForQuestionAnswering.from_pretrained(model_id)
    except (OSError, ValueError) as err:
        cache = os.environ.get("HF_HOME", str(Path("~/.cache/huggingface").expanduser()))
        raise GazelabError(
            f"cannot load the BLIP VQA model {model_id!r} ({type(err).__name__}): it is downloaded once into the "
            f"Hugging Face cache (HF_HOME={cache}) — connect to the internet once, set HF_HOME to a cache that "
            "holds it, or pass a local folder written with save_pretrained"
        ) from err
    try:
        model = model.to(device)
    except (RuntimeError, AssertionError) as err:
        raise GazelabError(f"cannot use device {device!r} ({err}) — pass --device cpu or an available GPU") from err
    return BlipVqaGradCam(model, processor, settings)


def person_box(person: Person, frame_size: tuple[int, int], mode: str) -> Box | None:
    """The box drawn for ``person``: body box, else the head box enlarged 1.5x (mode ``body``), or the head."""
    head = person.head
    if head is None and person.head_px is not None:
        head = Box.from_pixels(*person.head_px, width=frame_size[0], height=frame_size[1])
    if mode == "body" and person.body is not None:
        return person.body.clamp()
    if head is None:
        return None
    if mode == "head":
        return head.clamp()
    (cx, cy), half_w, half_h = head.center, head.width * HEAD_EXPAND / 2, head.height * HEAD_EXPAND / 2
    return Box(cx - half_w, cy - half_h, cx + half_w, cy + half_h).clamp()


def draw_box(image: Image.Image, box: Box) -> Image.Image:
    """A copy of ``image`` with ``box`` outlined in green, 2 px wide."""
    drawn = image.copy()
    x1, y1, x2, y2 = box.to_pixels(*image.size)
    ImageDraw.Draw(drawn).rectangle((x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)), outline=GREEN, width=2)
    return drawn


class GradCamPrior:
    """People -> prior records through a :class:`VqaGradCam` backend (a ``produce`` function for the job
    runner): one image load per frame in the batch, one backend call for all people of the batch."""

    def __init__(self, backend: VqaGradCam, settings: CamSettings | None = None) -> None:
        self.backend = backend
        self.settings = settings or CamSettings()

    def __call__(self, items: Sequence[tuple[Frame, int]]) -> list[PriorRecord]:
        images: dict[str, Image.Image] = {}
        asked: list[int] = []
        drawn: list[Image.Image] = []
        for n, (frame, index) in enumerate(items):
            if frame.path not in images:
                images[frame.path] = load_image(frame.image_path)
            image = images[frame.path]
            box = person_box(frame.people[index], image.size, self.settings.box)
            if box is not None and box.area > 0:
                asked.append(n)
                drawn.append(draw_box(image, box))
        answers: list[str] = [""] * len(items)
        maps = np.zeros((len(items), SIZE, SIZE), np.float16)
        valid = np.zeros(len(items), bool)
        if drawn:
            said, cams, usable = self.backend.explain(drawn, self.settings.question)
            for n, answer, cam, ok in zip(asked, said, cams, usable.tolist()):
                answers[n], maps[n], valid[n] = answer, cam.numpy().astype(np.float16), ok
        records = []
        for n, (frame, index) in enumerate(items):
            image_key, pid = person_key(frame, index)
            records.append(PriorRecord(image_key, pid, maps[n], answers[n], bool(valid[n])))
        return records
