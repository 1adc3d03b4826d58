"""SemGaze's gaze decoder: a SAM-style two-way transformer between people tokens and image tokens, then heads.

Parameter names are those of the official checkpoints (``transformer.layers.i.cross_attn_gaze_to_image.q_proj``,
``norm2``..``norm4``, ``mlp.lin1``, ``not_a_person_embed``, ``upscaler.{1,2,5}``, ``heatmap_mlp.layers.i``,
``label_mlp.layers.i``). There is no self-attention between people and no positional encoding in the decoder;
people interact only through the image tokens they update.

Unlike the reference (which always attends to every slot, zero padding included), the image->people attention
takes a mask, so a person's prediction does not depend on how many empty slots its batch was padded with.

Optional, in no published configuration (``field_gammas``): each person's gaze field
(:func:`gazelab.models.gaze_field.gaze_field`, cast from the head box along the predicted gaze vector) biases the
attention logits between that person's token and every image token, in both directions, with a learned weight
per sharpness and head, and gates the person's heatmap: the raw map is multiplied by a learned mix of the
field's sharpnesses (Lian et al., ACCV 2018: scene saliency times gaze field), so the decoder's image tokens
need only say where objects are, and the field says which of them is on the person's ray. People share
the image tokens, so a per-person spatial prompt cannot be added to them as Gaze-LLE adds it; an attention bias
is per (person, token) pair. The person's token, which also yields the label embedding, then reads the objects
on its ray: the decoder picks the object there instead of having to learn the geometry of rays.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gazelab.models.gaze_field import gaze_field

FIELD_BIAS_INIT = 1.0
"""Initial attention-logit weight of each field sharpness: a mild pull (x e at the ray's centre) to start from."""
FIELD_HEATMAP_INIT = 1.0
"""Initial heatmap gate: the mean of the field's sharpnesses."""


class CrossAttention(nn.Module):
    """SAM's attention: separate q/k/v projections to a narrower inner width, heads over that width."""

    def __init__(self, dim: int, heads: int, downsample: int = 2, field: int = 0) -> None:
        """``field`` > 0 adds ``field_scale`` [field, heads]: the weights of that many gaze-field maps in the logits."""
        super().__init__()
        inner = dim // downsample
        if inner % heads:
            raise ValueError(f"attention width {inner} is not divisible by {heads} heads")
        self.heads = heads
        self.q_proj = nn.Linear(dim, inner)
        self.k_proj = nn.Linear(dim, inner)
        self.v_proj = nn.Linear(dim, inner)
        self.out_proj = nn.Linear(inner, dim)
        if field:
            self.field_scale = nn.Parameter(torch.full((field, heads), FIELD_BIAS_INIT))

    def _split(self, x: Tensor) -> Tensor:
        batch, tokens, width = x.shape
        return x.reshape(batch, tokens, self.heads, width // self.heads).transpose(1, 2)

    def forward(
        self, q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor | None = None, field: Tensor | None = None
    ) -> Tensor:
        """``key_mask`` [B, S] (True = attend) hides padded keys; ``field`` [B, G, T, S] (query T, key S; only
        with ``field_scale``) adds ``sum_g field_scale[g, head] * field[g]`` to each head's logits."""
        mask = None if key_mask is None else key_mask[:, None, None, :]
        if field is not None:
            bias = torch.einsum("bgts,gh->bhts", field.to(q.dtype), self.field_scale.to(q.dtype))
            mask = bias if mask is None else bias.masked_fill(~mask, float("-inf"))
        out = F.scaled_dot_product_attention(self._split(self.q_proj(q)), self._split(self.k_proj(k)),
                                             self._split(self.v_proj(v)), attn_mask=mask)  # fmt: skip
        batch, _, tokens, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(batch, tokens, -1))


class MLPBlock(nn.Module):
    """``lin1`` -> ReLU -> ``lin2`` (the decoder blocks' feed-forward)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden)
        self.lin2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.lin2(F.relu(self.lin1(x)))


class MLP(nn.Module):
    """``layers.i`` linear layers with ReLU between them (none after the last)."""

    def __init__(self, dims: list[int]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == len(self.layers) - 1 else F.relu(layer(x))
        return x


class TwoWayBlock(nn.Module):
    """People->image attention, MLP, image->people attention; each residual and followed by a LayerNorm."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, downsample: int, field: int = 0) -> None:
        super().__init__()
        self.cross_attn_gaze_to_image = CrossAttention(dim, heads, downsample, field)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLPBlock(dim, mlp_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_gaze = CrossAttention(dim, heads, downsample, field)

    def forward(
        self, queries: Tensor, keys: Tensor, query_mask: Tensor | None, field: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """``field`` [B, G, Q, H*W]: people -> image tokens; the image -> people attention uses its transpose."""
        queries = self.norm2(queries + self.cross_attn_gaze_to_image(queries, keys, keys, field=field))
        queries = self.norm3(queries + self.mlp(queries))
        back = None if field is None else field.transpose(2, 3)
        keys = self.norm4(keys + self.cross_attn_image_to_gaze(keys, queries, queries, query_mask, back))
        return queries, keys


class TwoWayTransformer(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, mlp_dim: int, downsample: int, field: int = 0) -> None:
        super().__init__()
        self.layers = nn.ModuleList(TwoWayBlock(dim, heads, mlp_dim, downsample, field) for _ in range(depth))
        self.final_attn_gaze_to_image = CrossAttention(dim, heads, downsample, field)
        self.norm_final_attn = nn.LayerNorm(dim)

    def forward(
        self, image: Tensor, queries: Tensor, query_mask: Tensor | None, field: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """``image`` [B, C, H, W], ``queries`` [B, Q, C] (``field`` [B, G, Q, H*W] or None) -> (queries [B, Q, C],
        image tokens [B, H*W, C])."""
        keys = image.flatten(2).transpose(1, 2)
        for layer in self.layers:
            queries, keys = layer(queries, keys, query_mask, field)
        queries = self.norm_final_attn(queries + self.final_attn_gaze_to_image(queries, keys, keys, field=field))
        return queries, keys


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of a [B, C, H, W] map (SAM's, eps 1e-6)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias, self.eps).permute(0, 3, 1, 2)


class GazeDecoder(nn.Module):
    """People tokens + image features -> per-person heatmap [64 x 64] (raw) and label embedding (L2-normed)."""

    def __init__(
        self,
        dim: int,
        depth: int,
        heads: int,
        mlp_dim: int,
        downsample: int,
        label_dim: int,
        label_layers: int = 6,
        field_gammas: tuple[float, ...] = (),
        he_label_init: bool = False,
        label_at_target: bool = False,
    ) -> None:
        """``field_gammas`` (empty: the published decoder) turns on the gaze-field biases (module docstring).

        ``he_label_init`` (not in the paper) starts the label MLP's hidden layers with He initialisation. With
        PyTorch's default one each ReLU layer shrinks the spread between people ~2.4x, so after five of them every
        person's embedding is the same direction (cosine 0.9995 between all people after 200 synthetic steps)
        and InfoNCE stays at log(classes): a decoder trained from scratch in a small budget never leaves it.

        ``label_at_target`` (not in the paper) adds to each person's token, before the label MLP, the decoder's
        image tokens averaged under the person's own heatmap (clamped at 0, detached): the label reads what lies
        where the person looks instead of having to carry it in the token."""
        super().__init__()
        self.field_gammas = tuple(field_gammas)
        self.label_at_target = label_at_target
        self.not_a_person_embed = nn.Embedding(1, dim)
        self.transformer = TwoWayTransformer(dim, depth, heads, mlp_dim, downsample, len(self.field_gammas))
        up1, up2 = dim // 4, dim // 8
        self.upscaler = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear"),
            nn.Conv2d(dim, up1, 3, padding=1),
            LayerNorm2d(up1),
            nn.GELU(),
            nn.Upsample(scale_factor=2, mode="bilinear"),
            nn.Conv2d(up1, up2, 3, padding=1),
            nn.GELU(),
        )
        self.heatmap_mlp = MLP([dim, dim, dim, up2])
        self.label_mlp = MLP([dim] * label_layers + [label_dim])
        if he_label_init:
            for layer in self.label_mlp.layers[:-1]:
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                nn.init.zeros_(layer.bias)
        if self.field_gammas:
            self.field_heatmap = nn.Parameter(
                torch.full((len(self.field_gammas),), FIELD_HEATMAP_INIT / len(field_gammas))
            )

    def forward(
        self,
        image: Tensor,
        people: Tensor,
        people_mask: Tensor | None = None,
        rays: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """``image`` [B, C, h, w], ``people`` [B, N, C] (``people_mask`` [B, N], True = real person) ->
        (heatmaps [B, N, 4h, 4w], label embeddings [B, N, label_dim]). With ``field_gammas``, ``rays`` = (head
        boxes [B, N, 4], unit gaze vectors [B, N, 2]) cast each person's field; a zero vector casts none."""
        batch, n = people.shape[:2]
        rows, cols = image.shape[-2:]
        queries = torch.cat([people, self.not_a_person_embed.weight.expand(batch, -1, -1)], dim=1)
        mask = None
        if people_mask is not None:
            mask = torch.cat([people_mask, people_mask.new_ones(batch, 1)], dim=1)
        field = None
        if self.field_gammas:
            if rays is None:
                raise ValueError("this decoder casts gaze fields: pass rays=(head boxes, gaze vectors)")
            field = self._field(rays, rows, cols).flatten(3)  # [B, N, G, h*w]
            field = torch.cat([field, field.new_zeros(batch, 1, *field.shape[2:])], dim=1).transpose(1, 2)
        queries, keys = self.transformer(image, queries, mask, field)
        queries = queries[:, :n]
        upscaled = self.upscaler(keys.transpose(1, 2).reshape(batch, -1, rows, cols))
        heatmaps = (self.heatmap_mlp(queries) @ upscaled.flatten(2)).reshape(batch, n, *upscaled.shape[-2:])
        if self.field_gammas:
            fine = self._field(rays, *upscaled.shape[-2:])
            heatmaps = heatmaps * torch.einsum("bngrc,g->bnrc", fine, self.field_heatmap.to(fine.dtype))
        if self.label_at_target:
            weights = F.adaptive_avg_pool2d(heatmaps.detach().clamp(min=0), (rows, cols)).flatten(2)
            weights = weights / weights.sum(-1, keepdim=True).clamp(min=1e-6)
            queries = queries + weights.to(keys.dtype) @ keys
        return heatmaps, F.normalize(self.label_mlp(queries), dim=-1)

    def _field(self, rays: tuple[Tensor, Tensor], rows: int, cols: int) -> Tensor:
        """Each slot's gaze field [B, N, G, rows, cols]."""
        boxes, vectors = rays
        batch, n = vectors.shape[:2]
        field = gaze_field(boxes.flatten(0, 1), vectors.flatten(0, 1), rows, cols, self.field_gammas)
        return field.reshape(batch, n, *field.shape[1:])
