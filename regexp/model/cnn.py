"""A small convolutional network for image data sets (``model=cnn``).

The input is a row of ``C·H·W`` pixels in channel-major order (:mod:`regexp.data.images`),
unflattened to ``[C, H, W]``; then per entry of ``channels``::

    Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2) → activation
    → [MaxPool2d(pool)] → [Dropout(dropout)]

then ``Flatten`` (channel-major: column ``c·h·w + i`` of the first linear layer reads channel
``c`` of the last conv layer) and a linear head ``Linear → activation → [Dropout]`` per entry
of ``hidden``, and a linear output layer.

Its groups (the unit a group penalty removes) are channels: a conv layer's input channel
``c`` is ``W[:, c, :, :]`` (the outgoing weights of channel ``c`` of the layer below, or of
the image's channel ``c`` for the first conv layer), and the first linear layer's inputs
are grouped per channel of the last conv layer (:func:`head_groups`), so a channel is
removed only when all of its outgoing weights are zero.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from regexp.model.mlp import ACTIVATIONS, INITS


def validate_cnn(
    channels: Sequence[int],
    kernel_size: int,
    pool: int,
    activation: str,
    dropout: float,
    init: str,
    hidden: Sequence[int] = (),
    image_shape: tuple[int, int] | None = (8, 8),
) -> None:
    """Raise ``ValueError`` naming the first bad conv-net option."""
    if isinstance(channels, str | bytes) or not isinstance(channels, Sequence) or not channels:
        raise ValueError(
            f"model.channels must be a non-empty list of positive ints, got {channels!r}"
        )
    for name, values in (("channels", channels), ("hidden", hidden)):
        if isinstance(values, str | bytes) or not isinstance(values, Sequence):
            raise ValueError(f"model.{name} must be a list of positive ints, got {values!r}")
        if any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in values):
            raise ValueError(f"model.{name} sizes must be positive ints, got {list(values)}")
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size % 2 == 0:
        raise ValueError(f"model.kernel_size must be an odd positive int, got {kernel_size!r}")
    if kernel_size < 1:
        raise ValueError(f"model.kernel_size must be an odd positive int, got {kernel_size!r}")
    if isinstance(pool, bool) or not isinstance(pool, int) or pool < 1:
        raise ValueError(f"model.pool must be an int >= 1 (1: no pooling), got {pool!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"model.activation must be one of {', '.join(ACTIVATIONS)}, got '{activation}'"
        )
    if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0 <= dropout < 1:
        raise ValueError(f"model.dropout must be in [0, 1), got {dropout!r}")
    if init not in INITS:
        raise ValueError(f"model.init must be one of {', '.join(INITS)}, got '{init}'")
    if image_shape is None:
        raise ValueError("model=cnn needs an image data set (e.g. dataset=digits_images)")
    height, width = image_shape
    if min(height, width) < pool ** len(channels):
        raise ValueError(
            f"model.pool={pool} over {len(channels)} conv layers shrinks {height}×{width} "
            "images below one pixel; use fewer layers or model.pool=1"
        )


def cnn(
    in_shape: tuple[int, int, int],
    channels: Sequence[int],
    n_out: int,
    kernel_size: int = 3,
    pool: int = 2,
    activation: str = "relu",
    dropout: float = 0.0,
    init: str = "default",
    hidden: Sequence[int] = (),
) -> nn.Sequential:
    """The conv net described in the module docstring, for inputs of ``in_shape`` (C, H, W).

    ``init="glorot_normal"``/``"glorot_uniform"`` draws conv and linear weights with
    Xavier's scheme and zeroes biases, as :func:`regexp.model.mlp.mlp` does.
    """
    c, h, w = in_shape
    validate_cnn(channels, kernel_size, pool, activation, dropout, init, hidden, (h, w))
    layers: list[nn.Module] = [nn.Unflatten(1, (c, h, w))]
    for out in channels:
        layers += [nn.Conv2d(c, out, kernel_size, padding=kernel_size // 2)]
        layers.append(ACTIVATIONS[activation]())
        if pool > 1:
            layers.append(nn.MaxPool2d(pool))
            h, w = h // pool, w // pool
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        c = out
    layers.append(nn.Flatten())
    sizes = [c * h * w, *hidden, n_out]
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    model = nn.Sequential(*layers)
    if init != "default":
        for layer in model:
            if isinstance(layer, nn.Conv2d | nn.Linear):
                if init == "glorot_normal":
                    nn.init.xavier_normal_(layer.weight)
                else:
                    nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
    return model


def head_groups(model: nn.Sequential) -> int:
    """The number of columns of the first linear layer per channel of the last conv layer
    (``h·w`` of its pooled output): the size of one channel's group there."""
    convs = [m for m in model if isinstance(m, nn.Conv2d)]
    first = next(m for m in model if isinstance(m, nn.Linear))
    return first.in_features // convs[-1].out_channels
