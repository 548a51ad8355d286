# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Tests for temcoco_core.model.deform (pure-PyTorch deformable convolution)."""

from __future__ import annotations

from dataclasses import dataclass
import math

import pytest
import torch
import torch.nn.functional as F

from temcoco_core.model.deform import (
    deform_conv2d,
    deform_conv_output_size,
    DeformConv2d,
    DeformConvShapeError,
)

# --------------------------------------------------------------------------------------------
# Independent slow reference, written from the definition (torchvision / mmcv CUDA semantics).
# --------------------------------------------------------------------------------------------


def _bilinear_ref(img: torch.Tensor, y: float, x: float) -> torch.Tensor:
    """Sample ``img`` (C, H, W) at fractional (y, x); out-of-image corners contribute zero."""
    chans, height, width = img.shape
    out = torch.zeros(chans, dtype=img.dtype)
    if y <= -1 or y >= height or x <= -1 or x >= width:
        return out
    y0, x0 = math.floor(y), math.floor(x)
    y1, x1 = y0 + 1, x0 + 1
    ly, lx = y - y0, x - x0
    hy, hx = 1.0 - ly, 1.0 - lx
    for yy, xx, w in ((y0, x0, hy * hx), (y0, x1, hy * lx), (y1, x0, ly * hx), (y1, x1, ly * lx)):
        if 0 <= yy <= height - 1 and 0 <= xx <= width - 1:
            out = out + w * img[:, yy, xx]
    return out


def deform_conv2d_ref(x, offset, weight, bias, stride, padding, dilation, mask):
    """Explicit loops over batch, output pixels, deformable groups and kernel taps."""
    batch, in_ch, height, width = x.shape
    out_ch, in_per_group, kh, kw = weight.shape
    groups = in_ch // in_per_group
    out_per_group = out_ch // groups
    dgroups = offset.shape[1] // (2 * kh * kw)
    ch_per_dg = in_ch // dgroups
    out_h, out_w = offset.shape[2:]
    off = offset.tolist()
    msk = mask.tolist() if mask is not None else None
    out = torch.zeros(batch, out_ch, out_h, out_w, dtype=x.dtype)
    for b in range(batch):
        for oh in range(out_h):
            for ow in range(out_w):
                # sampled value of every input channel at every tap: (C_in, kh, kw)
                cols = torch.zeros(in_ch, kh, kw, dtype=x.dtype)
                for g in range(dgroups):
                    for i in range(kh):
                        for j in range(kw):
                            k = i * kw + j
                            dy = off[b][2 * (g * kh * kw + k)][oh][ow]
                            dx = off[b][2 * (g * kh * kw + k) + 1][oh][ow]
                            y = oh * stride[0] - padding[0] + i * dilation[0] + dy
                            xx = ow * stride[1] - padding[1] + j * dilation[1] + dx
                            chans = slice(g * ch_per_dg, (g + 1) * ch_per_dg)
                            val = _bilinear_ref(x[b, chans], y, xx)
                            if msk is not None:
                                val = val * msk[b][g * kh * kw + k][oh][ow]
                            cols[chans, i, j] = val
                for o in range(out_ch):
                    gw = o // out_per_group
                    grp = cols[gw * in_per_group:(gw + 1) * in_per_group]
                    acc = (weight[o] * grp).sum()
                    out[b, o, oh, ow] = acc + (bias[o] if bias is not None else 0.0)
    return out


@dataclass(frozen=True)
class Case:
    name: str
    batch: int
    in_ch: int
    out_ch: int
    size: tuple[int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    dgroups: int = 1
    use_mask: bool = False
    use_bias: bool = False
    offset_scale: float = 1.5


CASES = [
    Case("basic", 2, 3, 4, (5, 7), (3, 3), padding=(1, 1)),
    Case(
        "stride2_groups_dg_mask",
        2,
        4,
        6,
        (7, 6),
        (3, 3),
        stride=(2, 2),
        padding=(1, 1),
        groups=2,
        dgroups=2,
        use_mask=True,
        use_bias=True,
    ),
    Case(
        "dilation2_far_offsets",
        1,
        8,
        4,
        (6, 8),
        (3, 3),
        padding=(2, 2),
        dilation=(2, 2),
        groups=4,
        dgroups=4,
        use_mask=True,
        offset_scale=6.0,
    ),
    Case(
        "rect_kernel_mixed_hparams",
        2,
        4,
        2,
        (6, 5),
        (2, 3),
        stride=(2, 1),
        padding=(0, 1),
        dilation=(1, 2),
        dgroups=2,
        use_bias=True,
        offset_scale=3.0,
    ),
    Case("width_one", 1, 2, 2, (5, 1), (3, 3), padding=(1, 1), use_mask=True),
    Case("height_one", 2, 2, 3, (1, 6), (1, 3), padding=(0, 1), dgroups=2, offset_scale=2.0),
]


def _make_inputs(case: Case, dtype=torch.float64, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    kh, kw = case.kernel
    out_h, out_w = deform_conv_output_size(
        case.size, case.kernel, case.stride, case.padding, case.dilation
    )
    x = torch.randn(case.batch, case.in_ch, *case.size, generator=gen, dtype=dtype)
    weight = torch.randn(case.out_ch, case.in_ch // case.groups, kh, kw, generator=gen,
                         dtype=dtype)
    offset = case.offset_scale * torch.randn(
        case.batch, 2 * case.dgroups * kh * kw, out_h, out_w, generator=gen, dtype=dtype
    )
    mask = None
    if case.use_mask:
        mask = torch.rand(case.batch, case.dgroups * kh * kw, out_h, out_w, generator=gen)
        mask = mask.to(dtype)
    bias = torch.randn(case.out_ch, generator=gen, dtype=dtype) if case.use_bias else None
    return x, offset, weight, bias, mask


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_matches_slow_reference(case: Case) -> None:
    x, offset, weight, bias, mask = _make_inputs(case)
    got = deform_conv2d(x, offset, weight, bias, case.stride, case.padding, case.dilation, mask)
    ref = deform_conv2d_ref(x, offset, weight, bias, case.stride, case.padding, case.dilation,
                            mask)
    assert got.shape == ref.shape
    assert got.dtype == torch.float64
    assert (got - ref).abs().max().item() <= 1e-5


def test_reference_cases_sample_outside_image() -> None:
    """Guard that the random offsets really push some samples outside (and across -1 / H)."""
    case = CASES[2]
    x, offset, *_ = _make_inputs(case)
    kh, kw = case.kernel
    off = offset.view(case.batch, case.dgroups, kh * kw, 2, *offset.shape[2:])
    assert (off.abs() > case.size[0] + 2).any()


def test_boundary_cutoffs_exact() -> None:
    """Single-tap probes of the bilinear rule at and around the -1 / H cut-offs."""
    x = torch.arange(1.0, 13.0, dtype=torch.float64).view(1, 1, 3, 4)
    weight = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    probes = [-1.0, -0.999, -0.5, 0.0, 0.25, 1.5, 2.0, 2.5, 2.999, 3.0, 3.5, -7.0]
    for dy in probes:
        for dx in [-1.0, -0.3, 0.7, 3.0, 3.2, 4.0]:
            off = torch.tensor([dy, dx], dtype=torch.float64).view(1, 2, 1, 1)
            # Output pixel (0, 0) with kernel 1x1 samples x at (dy, dx) exactly.
            got = deform_conv2d(x, off.expand(1, 2, 3, 4).clone(), weight)[0, 0, 0, 0].item()
            want = _bilinear_ref(x[0], dy, dx)[0].item()
            assert got == pytest.approx(want, abs=1e-12), (dy, dx)
    # Hand-computed values (x[r, c] = 4 r + c + 1): half of a corner survives past the edge.
    assert _bilinear_ref(x[0], -0.5, 0.0)[0].item() == pytest.approx(0.5)
    assert _bilinear_ref(x[0], 2.5, 3.0)[0].item() == pytest.approx(6.0)
    assert _bilinear_ref(x[0], -1.0, 1.0)[0].item() == 0.0


# --------------------------------------------------------------------------------------------
# Consistency with ordinary convolution.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES[:4], ids=[c.name for c in CASES[:4]])
def test_zero_offset_equals_conv2d(case: Case) -> None:
    x, offset, weight, bias, _ = _make_inputs(case, dtype=torch.float32)
    got = deform_conv2d(
        x, torch.zeros_like(offset), weight, bias, case.stride, case.padding, case.dilation
    )
    want = F.conv2d(x, weight, bias, case.stride, case.padding, case.dilation, case.groups)
    assert got.shape == want.shape
    assert (got - want).abs().max().item() <= 1e-5


def test_integer_offset_equals_shifted_conv() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 6, 9, generator=gen)
    weight = torch.randn(6, 2, 3, 3, generator=gen)
    offset = torch.zeros(2, 2 * 2 * 9, 6, 9)
    offset[:, 1::2] = 1.0  # dx = +1 for every tap and deformable group
    got = deform_conv2d(x, offset, weight, padding=(1, 1))
    shifted = torch.zeros_like(x)
    shifted[..., :-1] = x[..., 1:]  # shifted(p) = x(p + (0, 1))
    want = F.conv2d(shifted, weight, padding=1, groups=2)
    interior = (slice(None), slice(None), slice(None), slice(1, -1))
    assert (got[interior] - want[interior]).abs().max().item() <= 1e-5
    # At the left border the two differ (padding vs real pixel), showing the test can fail.
    assert (got[..., 0] - want[..., 0]).abs().max().item() > 1e-3


# --------------------------------------------------------------------------------------------
# Autograd, dtypes, module.
# --------------------------------------------------------------------------------------------


def test_gradcheck_float64() -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(1, 2, 3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(2, 1, 2, 2, generator=gen, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(2, generator=gen, dtype=torch.float64, requires_grad=True)
    offset = 0.8 * torch.randn(1, 2 * 2 * 4, 4, 5, generator=gen, dtype=torch.float64)
    offset.requires_grad_(True)
    mask = torch.rand(1, 2 * 4, 4, 5, generator=gen, dtype=torch.float64, requires_grad=True)

    def fn(x_, off_, w_, b_, m_):
        return deform_conv2d(x_, off_, w_, b_, padding=(1, 1), mask=m_)

    assert torch.autograd.gradcheck(fn, (x, offset, weight, bias, mask), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_dtypes(dtype: torch.dtype) -> None:
    case = CASES[1]
    x, offset, weight, bias, mask = _make_inputs(case, dtype=torch.float64, seed=3)
    ref = deform_conv2d(x, offset, weight, bias, case.stride, case.padding, case.dilation, mask)
    args = [t.to(dtype) if t is not None else None for t in (x, offset, weight, bias, mask)]
    got = deform_conv2d(
        args[0], args[1], args[2], args[3], case.stride, case.padding, case.dilation, args[4]
    )
    assert got.dtype == dtype
    rel = (got.double() - ref).abs().max().item() / ref.abs().max().item()
    assert rel < (2e-2 if dtype == torch.bfloat16 else 5e-3), rel


def test_module_released_checkpoint_shapes_load() -> None:
    dcn1 = DeformConv2d(64, 64, 3, padding=1, groups=8, deformable_groups=8)
    dcn2 = DeformConv2d(32, 32, 3, padding=1, groups=4, deformable_groups=8)
    assert list(dict(dcn1.named_parameters())) == ["weight"]
    assert tuple(dcn1.weight.shape) == (64, 8, 3, 3)
    assert tuple(dcn2.weight.shape) == (32, 8, 3, 3)
    assert dcn1.offset_channels == dcn2.offset_channels == 144  # off2d_*: Conv2d(C, 144, 3)
    released = {"DCN_1.dconv_1.weight": torch.randn(64, 8, 3, 3)}
    dcn1.load_state_dict({"weight": released["DCN_1.dconv_1.weight"]})
    assert torch.equal(dcn1.weight.detach(), released["DCN_1.dconv_1.weight"])
    with pytest.raises(RuntimeError):
        dcn2.load_state_dict({"weight": torch.randn(32, 4, 3, 3)})
    # Init bound 1/sqrt(in * kh * kw), as in the released layer.
    bound = 1.0 / math.sqrt(64 * 9)
    assert DeformConv2d(64, 64, 3, groups=8).weight.abs().max().item() <= bound
    # Forward at a tiny size, with a non-contiguous offset (a channel slice).
    x = torch.randn(1, 32, 4, 5)
    offset = torch.randn(1, 200, 4, 5)[:, 10:154]
    out = dcn2(x, offset)
    assert out.shape == (1, 32, 4, 5)


def test_module_bias_and_backward() -> None:
    layer = DeformConv2d(
        4, 6, (3, 3), stride=2, padding=1, groups=2, deformable_groups=2, bias=True
    )
    assert tuple(layer.bias.shape) == (6,) and torch.all(layer.bias == 0)
    x = torch.randn(2, 4, 7, 7, requires_grad=True)
    offset = torch.randn(2, layer.offset_channels, 4, 4, requires_grad=True)
    mask = torch.rand(2, 18, 4, 4, requires_grad=True)
    out = layer(x, offset, mask)
    assert out.shape == (2, 6, 4, 4)
    out.square().mean().backward()
    for t in (x, offset, mask, layer.weight, layer.bias):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0
    assert "deformable_groups=2" in repr(layer)


# --------------------------------------------------------------------------------------------
# Validation.
# --------------------------------------------------------------------------------------------


def _good():
    x = torch.randn(1, 4, 5, 6)
    weight = torch.randn(4, 2, 3, 3)
    offset = torch.randn(1, 2 * 2 * 9, 5, 6)
    return x, offset, weight


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda x, o, w: (x[0], o, w, {}), "input must be"),
        (lambda x, o, w: (x, o[:, :17], w, {}), "not a positive multiple of 2\\*kh\\*kw"),
        (lambda x, o, w: (x, o[..., :4, :], w, {}), "offset spatial size"),
        (lambda x, o, w: (x, o, torch.randn(4, 3, 3, 3), {}), "does not divide input channels"),
        (lambda x, o, w: (x, o, torch.randn(3, 2, 3, 3), {}), "does not divide C_out"),
        (lambda x, o, w: (x, torch.randn(1, 54, 5, 6), w, {}), "deformable groups 3"),
        (lambda x, o, w: (x, torch.randn(2, 36, 5, 6), w, {}), "offset batch size"),
        (lambda x, o, w: (x, o, w, {"mask": torch.rand(1, 9, 5, 6)}), "mask must have shape"),
        (lambda x, o, w: (x, o, w, {"bias": torch.zeros(3)}), "bias must have shape"),
        (lambda x, o, w: (x, o, w, {"stride": 0}), "stride must be >= 1"),
        (lambda x, o, w: (x, o, w, {"padding": (1, 1, 1)}), "padding must be an int or a pair"),
        (
            lambda x, o, w: (x[..., :2, :], torch.randn(1, 36, 0, 4), w, {"padding": 0}),
            "too small",
        ),
    ],
)
def test_shape_errors(mutate, match) -> None:
    x, o, w, kwargs = mutate(*_good())
    kwargs.setdefault("padding", (1, 1))
    with pytest.raises(ValueError, match=match):
        deform_conv2d(x, o, w, **kwargs)


def test_module_errors() -> None:
    with pytest.raises(DeformConvShapeError, match="groups=3 must divide"):
        DeformConv2d(4, 4, 3, groups=3)
    with pytest.raises(ValueError, match="deformable_groups=3 must divide"):
        DeformConv2d(4, 4, 3, deformable_groups=3)
    layer = DeformConv2d(4, 4, 3, padding=1, deformable_groups=2)
    with pytest.raises(ValueError, match="expected offset with 36 channels"):
        layer(torch.randn(1, 4, 5, 5), torch.randn(1, 18, 5, 5))
    with pytest.raises(ValueError, match="expected input"):
        layer(torch.randn(1, 3, 5, 5), torch.randn(1, 36, 5, 5))


# --------------------------------------------------------------------------------------------
# Export.
# --------------------------------------------------------------------------------------------


def _export_fixture():
    with torch.random.fork_rng():
        torch.manual_seed(4)
        layer = DeformConv2d(8, 8, 3, padding=1, groups=2, deformable_groups=2, bias=True).eval()
        with torch.no_grad():
            layer.bias.normal_()
        x = torch.randn(2, 8, 6, 7)
        offset = 2.0 * torch.randn(2, layer.offset_channels, 6, 7)
        mask = torch.rand(2, 18, 6, 7)
    return layer, (x, offset, mask)


def _dynamic_shapes():
    batch = torch.export.Dim("batch", min=1, max=64)
    height = torch.export.Dim("height", min=2, max=4096)
    width = torch.export.Dim("width", min=2, max=4096)
    spec = {0: batch, 2: height, 3: width}
    return (spec, spec, spec)


def _fresh_args(shape_bhw=(3, 9, 5)):
    b, h, w = shape_bhw
    gen = torch.Generator().manual_seed(6)
    return (
        torch.randn(b, 8, h, w, generator=gen),
        2.0 * torch.randn(b, 36, h, w, generator=gen),
        torch.rand(b, 18, h, w, generator=gen),
    )


def test_torch_export_dynamic_shapes() -> None:
    layer, args = _export_fixture()
    ep = torch.export.export(layer, args, dynamic_shapes=_dynamic_shapes(), strict=False)
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert any("grid_sampler" in t for t in targets), targets
    with torch.no_grad():
        assert torch.allclose(ep.module()(*args), layer(*args), atol=1e-6)
        args2 = _fresh_args()  # other batch and spatial size, same program
        assert torch.allclose(ep.module()(*args2), layer(*args2), atol=1e-6)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.filterwarnings("ignore:.*axis name.*:UserWarning")
@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "legacy_opset17"])
def test_onnx_export_onnxruntime_matches(tmp_path, dynamo: bool) -> None:
    pytest.importorskip("onnx", reason="onnx is not installed")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    if dynamo:
        pytest.importorskip("onnxscript", reason="onnxscript (dynamo ONNX exporter) missing")
    layer, args = _export_fixture()
    path = tmp_path / "deform.onnx"
    names = ["x", "offset", "mask"]
    if dynamo:
        kwargs = {"dynamo": True, "dynamic_shapes": _dynamic_shapes(), "verbose": False}
    else:
        axes = {0: "batch", 2: "height", 3: "width"}
        kwargs = {
            "dynamo": False,
            "opset_version": 17,
            "dynamic_axes": {n: axes for n in [*names, "y"]},
        }
    torch.onnx.export(layer, args, str(path), input_names=names, output_names=["y"], **kwargs)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for feed_args in (args, _fresh_args()):
        feeds = dict(zip(names, (a.numpy() for a in feed_args)))
        (got,) = sess.run(["y"], feeds)
        with torch.no_grad():
            want = layer(*feed_args).numpy()
        assert got.shape == want.shape
        diff = float(abs(got - want).max())
        print(f"onnxruntime vs torch max abs diff (dynamo={dynamo}): {diff:.3e}")
        assert diff <= 1e-4


# --------------------------------------------------------------------------------------------
# torchvision on CUDA (only where available; torchvision's compiled ops don't load here).
# --------------------------------------------------------------------------------------------


def test_matches_torchvision_cuda() -> None:
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    try:
        from torchvision.ops import deform_conv2d as tv_deform_conv2d
    except Exception as err:  # ImportError or a failing compiled extension
        pytest.skip(f"torchvision.ops is not usable: {err}")
    worst = 0.0
    for case in CASES:
        x, offset, weight, bias, mask = (
            t.float().cuda() if t is not None else None for t in _make_inputs(case, seed=5)
        )
        ours = deform_conv2d(
            x, offset, weight, bias, case.stride, case.padding, case.dilation, mask
        )
        theirs = tv_deform_conv2d(
            x, offset, weight, bias, case.stride, case.padding, case.dilation, mask
        )
        diff = (ours - theirs).abs().max().item()
        print(f"torchvision CUDA max abs diff [{case.name}]: {diff:.3e}")
        worst = max(worst, diff)
    assert worst <= 1e-4
