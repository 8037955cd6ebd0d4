"""The C-LSTM against a numpy per-step loop written from the SPEC equations, plus exact mask properties."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clstm_jax.model.clstm import ModelConfig, apply, init, run
from clstm_jax.model.masks import FUSIONS, live_count, make_masks, total_count, variant_masks
from clstm_jax.training.step import loss_fn

# Small shapes keep every test fast; the code takes them from the config.
CFG = ModelConfig(channels=8, frames=5, bins=11, dense=16, conv="shifted")
BATCH = 3


def inputs(seed=0, cfg=CFG):
    rng = np.random.default_rng(seed)
    image = rng.random((BATCH, 28, 28)).astype(np.float32)
    spectrogram = rng.random((BATCH, cfg.frames, cfg.bins)).astype(np.float32)
    return jnp.asarray(image), jnp.asarray(spectrogram)


# ---- independent reference: float64 numpy, one time step at a time -----------------------------

def np_conv3x3(x, kernel):
    """'same' 3x3 cross-correlation with zero padding: x (B, H, W, Ci), kernel (3, 3, Ci, Co)."""
    B, H, W, _ = x.shape
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = np.zeros((B, H, W, kernel.shape[-1]))
    for dy in range(3):
        for dx in range(3):
            out += padded[:, dy : dy + H, dx : dx + W, :] @ kernel[dy, dx]
    return out


def np_pool(x):
    B, H, W, C = x.shape
    out = np.full((B, H // 2, W // 2, C), -np.inf)
    for dy in range(2):
        for dx in range(2):
            out = np.maximum(out, x[:, dy::2, dx::2, :])
    return out


def np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def np_cell(z, c, C):
    i, f, g, o = z[..., :C], z[..., C : 2 * C], z[..., 2 * C : 3 * C], z[..., 3 * C :]
    c = np_sigmoid(f) * c + np_sigmoid(i) * np.tanh(g)
    return np_sigmoid(o) * np.tanh(c), c


def reference_forward(params, masks, image, spectrogram, C):
    """Logits (B, T, 10) and hidden states, from the SPEC section 2 equations with W * M."""
    W = jax.tree.map(lambda p, m: np.asarray(p, np.float64) * np.asarray(m), params, masks.params)
    image = np.asarray(image, np.float64)[..., None] * float(masks.image)
    spectrogram = np.asarray(spectrogram, np.float64) * float(masks.audio)
    B, T = spectrogram.shape[:2]
    h1, c1 = np.zeros((B, 28, 28, C)), np.zeros((B, 28, 28, C))
    h2, c2 = np.zeros((B, 14, 14, C)), np.zeros((B, 14, 14, C))
    logits, h1s, h2s = [], [], []
    for t in range(T):
        z1 = (
            np_conv3x3(image, W["layer1"]["input_kernel"])
            + np_conv3x3(h1, W["layer1"]["hidden_kernel"])
            + (spectrogram[:, t] @ W["layer1"]["audio_kernel"])[:, None, None, :]
            + W["layer1"]["bias"]
        )
        h1, c1 = np_cell(z1, c1, C)
        x2 = np_pool(h1)
        z2 = np_conv3x3(x2, W["layer2"]["input_kernel"]) + np_conv3x3(h2, W["layer2"]["hidden_kernel"]) + W["layer2"]["bias"]
        h2, c2 = np_cell(z2, c2, C)
        hidden = np.maximum(np_pool(h2).reshape(B, -1) @ W["dense"]["kernel"] + W["dense"]["bias"], 0)
        logits.append(hidden @ W["output"]["kernel"] + W["output"]["bias"])
        h1s.append(h1)
        h2s.append(h2)
    return np.stack(logits, 1), np.stack(h1s, 1), np.stack(h2s, 1)


@pytest.fixture(scope="module")
def params():
    return init(jax.random.key(0), CFG)


@pytest.mark.parametrize("conv", ["shifted", "hybrid"])
@pytest.mark.parametrize("fusion, family", [(fusion, "masked") for fusion in FUSIONS] + [("second", "matched")])
def test_scanned_forward_equals_numpy_loop(params, fusion, family, conv):
    matched = family == "matched"
    params = full_init(jax.random.key(5)) if matched else params
    masks = variant_masks(params, CFG, fusion, matched=matched)
    image, spectrogram = inputs()
    cfg = CFG.__class__(**{**CFG.__dict__, "conv": conv})
    logits, states = run(params, masks, image, spectrogram, cfg, keep_states=True)
    ref_logits, ref_h1, ref_h2 = reference_forward(params, masks, image, spectrogram, 16 if matched else 8)
    assert logits.shape == (BATCH, CFG.frames, 10)
    assert np.abs(np.asarray(logits) - ref_logits).max() < 1e-4
    assert np.abs(np.asarray(states["h1"]) - ref_h1).max() < 1e-4
    assert np.abs(np.asarray(states["h2"]) - ref_h2).max() < 1e-4


def states_for(params, fusion, image, spectrogram, modalities="both"):
    masks = make_masks(params, CFG.visual_group, fusion, modalities)
    logits, states = jax.jit(run, static_argnums=(4, 5))(params, masks, image, spectrogram, CFG, True)
    return np.asarray(logits), {k: np.asarray(v) for k, v in states.items()}


def same(a, b):
    return np.array_equal(a, b)


def test_exact_zero_flow_per_fusion_depth(params):
    image, spectrogram = inputs(0)
    other_image, other_spectrogram = inputs(1)
    V = CFG.visual_group
    for fusion in FUSIONS:
        _, base = states_for(params, fusion, image, spectrogram)
        _, new_audio = states_for(params, fusion, image, other_spectrogram)
        _, new_image = states_for(params, fusion, other_image, spectrogram)
        # Which groups must be untouched: visual groups when only the audio changed, audio groups when only the image did.
        for layer, isolated in (("h1", fusion in ("second", "fc")), ("h2", fusion == "fc")):
            vis_same = same(base[layer][..., :V], new_audio[layer][..., :V])
            aud_same = same(base[layer][..., V:], new_image[layer][..., V:])
            assert vis_same == isolated and aud_same == isolated, (fusion, layer)
            # And the modality always reaches its own group.
            assert not same(base[layer][..., V:], new_audio[layer][..., V:])
            assert not same(base[layer][..., :V], new_image[layer][..., :V])


def test_masked_weights_get_exactly_zero_gradient(params):
    image, spectrogram = inputs()
    labels = jnp.array([1, 2, 3])
    gradient = jax.jit(jax.grad(loss_fn), static_argnums=(5, 6))  # masks are traced: one compilation for every variant
    for fusion in FUSIONS:
        for modalities in ("both", "visual", "audio"):
            masks = make_masks(params, CFG.visual_group, fusion, modalities)
            grads = gradient(params, masks, image, spectrogram, labels, CFG, "masked")
            learning = 0
            for g, m in zip(jax.tree.leaves(grads), jax.tree.leaves(masks.params)):
                g, m = np.asarray(g), np.asarray(m)
                assert np.all(g[m == 0] == 0)
                learning += np.count_nonzero(g[m == 1])
            assert learning > 0.3 * live_count(masks)  # and many live weights do learn (ReLU units may be dead)


def test_unimodal_logits_ignore_the_zeroed_input(params):
    image, spectrogram = inputs(0)
    other_image, other_spectrogram = inputs(1)
    visual, _ = states_for(params, "initial", image, spectrogram, "visual")
    assert same(visual, states_for(params, "initial", image, other_spectrogram, "visual")[0])
    assert not same(visual, states_for(params, "initial", other_image, spectrogram, "visual")[0])
    audio, _ = states_for(params, "initial", image, spectrogram, "audio")
    assert same(audio, states_for(params, "initial", other_image, spectrogram, "audio")[0])
    assert not same(audio, states_for(params, "initial", image, other_spectrogram, "audio")[0])


def test_live_parameter_counts_by_hand(params):
    """C = 8 channels (4 visual, 4 audio), 11 bins, dense 16: counts written out by hand."""
    gates = 4 * 8  # 32 gate columns: 16 visual, 16 audio
    layer1 = 9 * 1 * gates + 9 * 8 * gates + 11 * gates + gates  # image, hidden, audio kernels, bias = 2976
    layer2 = 2 * 9 * 8 * gates + gates  # input, hidden kernels, bias = 4640
    head = 7 * 7 * 8 * 16 + 16 + 16 * 10 + 10  # dense + output = 6458
    total = layer1 + layer2 + head
    assert total == 14074 == total_count(params)
    # Below the fusion layer: image -> 16 visual columns, audio -> 16 audio columns,
    # hidden kernels block-diagonal (4 x 16 + 4 x 16 per kernel offset).
    layer1_split = 9 * 16 + 9 * (4 * 16 + 4 * 16) + 11 * 16 + gates  # 1504
    layer2_split = 2 * 9 * (4 * 16 + 4 * 16) + gates  # 2336
    expected = {
        ("initial", "both"): total,
        ("second", "both"): layer1_split + layer2 + head,  # 12602
        ("fc", "both"): layer1_split + layer2_split + head,  # 10298
        ("initial", "visual"): total - 11 * gates,  # 13722
        ("initial", "audio"): total - 9 * gates,  # 13786
    }
    for (fusion, modalities), count in expected.items():
        assert live_count(make_masks(params, CFG.visual_group, fusion, modalities)) == count, (fusion, modalities)


def full_init(key):
    """The width-matched family's parameters at C = 8: layers of 16 channels."""
    return init(key, CFG, width=16)


def full_states(params, fusion, image, spectrogram, modalities="both"):
    masks = variant_masks(params, CFG, fusion, modalities, matched=True)
    logits, states = jax.jit(run, static_argnums=(4, 5))(params, masks, image, spectrogram, CFG, True)
    return np.asarray(logits), {k: np.asarray(v) for k, v in states.items()}


def c_wide(params, C):
    """The first C channels of a 2C-wide model as a C-wide one: those channels' gate columns and rows."""
    gates = np.concatenate([np.arange(C) + g * 2 * C for g in range(4)])  # columns of channels < C, gates i, f, g, o
    cut = lambda kernel, rows: kernel[..., rows, :][..., gates]
    dense = params["dense"]["kernel"].reshape(-1, 2 * C, params["dense"]["kernel"].shape[-1])[:, :C]
    return {"layer1": {"input_kernel": params["layer1"]["input_kernel"][..., gates],
                       "hidden_kernel": cut(params["layer1"]["hidden_kernel"], slice(0, C)),
                       "audio_kernel": params["layer1"]["audio_kernel"][:, gates],
                       "bias": params["layer1"]["bias"][gates]},
            "layer2": {"input_kernel": cut(params["layer2"]["input_kernel"], slice(0, C)),
                       "hidden_kernel": cut(params["layer2"]["hidden_kernel"], slice(0, C)),
                       "bias": params["layer2"]["bias"][gates]},
            "dense": {"kernel": dense.reshape(-1, dense.shape[-1]), "bias": params["dense"]["bias"]},
            "output": params["output"]}


def test_full_width_initial_fusion_is_the_c_wide_model_and_its_other_channels_stay_zero():
    params = full_init(jax.random.key(3))
    image, spectrogram = inputs()
    logits, states = full_states(params, "initial", image, spectrogram)
    narrow = c_wide(params, 8)
    reference = run(narrow, make_masks(narrow, CFG.visual_group, "initial"), image, spectrogram, CFG, keep_states=True)
    np.testing.assert_allclose(logits, reference[0], rtol=1e-5, atol=1e-6)
    for layer in ("h1", "h2"):
        np.testing.assert_allclose(states[layer][..., :8], reference[1][layer], rtol=1e-5, atol=1e-6)
        assert np.all(states[layer][..., 8:] == 0), layer


def test_full_width_streams_have_c_channels_each_below_the_fusion_layer():
    """Each modality's group is all C = 8 channels below the fusion layer: the other input cannot reach it;
    a fused layer uses its first 8 of 16 channels, and reads both."""
    params = full_init(jax.random.key(4))
    image, spectrogram = inputs(0)
    other_image, other_spectrogram = inputs(1)
    for fusion in ("second", "fc"):
        _, base = full_states(params, fusion, image, spectrogram)
        _, new_audio = full_states(params, fusion, image, other_spectrogram)
        _, new_image = full_states(params, fusion, other_image, spectrogram)
        for layer in ("h1", "h2") if fusion == "fc" else ("h1",):
            assert same(base[layer][..., :8], new_audio[layer][..., :8]), (fusion, layer)  # visual group: image only
            assert same(base[layer][..., 8:], new_image[layer][..., 8:]), (fusion, layer)  # audio group: audio only
            assert not same(base[layer][..., :8], new_image[layer][..., :8])
            assert not same(base[layer][..., 8:], new_audio[layer][..., 8:])
        if fusion == "second":  # the fused layer 2: 8 live channels that hear both, 8 that stay zero
            assert np.all(base["h2"][..., 8:] == 0)
            assert not same(base["h2"], new_audio["h2"]) and not same(base["h2"], new_image["h2"])


def test_a_two_family_sweep_gives_its_models_their_familys_masks():
    """A sweep of the masked and width-matched families stacks each family's models with their own masks:
    initial fusion (one network in every family) once, with all of the C-wide model's parameters live;
    width-matched late fusion more live parameters than masked (each modality keeps C channels), fc more
    than second, and the 2C-wide parameters never all live."""
    from conftest import micro

    from clstm_jax.config.experiments import sweep_models
    from clstm_jax.training.stacking import model_constants

    config = micro("sweep.family=masked,matched")
    specs = sweep_models(config)
    assert [(s.family, s.fusion) for s in specs] == [("masked", f) for f in FUSIONS] + [("matched", "second"), ("matched", "fc")]
    constants = model_constants(config, specs)
    live = {}
    for group, models in constants.items():
        members = [s for s in specs if s.family == group]
        live.update({(group, s.fusion): live_count(jax.tree.map(lambda m: m[i], models.masks)) for i, s in enumerate(members)})
    half = total_count(jax.eval_shape(lambda: init(jax.random.key(0), config.model)))
    full = total_count(jax.eval_shape(lambda: init(jax.random.key(0), config.model, 2 * config.model.channels)))
    assert live[("masked", "initial")] == half
    assert live[("masked", "second")] < live[("matched", "second")] < live[("matched", "fc")] < full
    assert live[("masked", "fc")] < live[("matched", "fc")]


def test_vmapped_stack_of_models_equals_each_model_alone():
    keys = jax.random.split(jax.random.key(1), 3)
    stacked = jax.vmap(init, in_axes=(0, None))(keys, CFG)  # (models, ...)
    models = [jax.tree.map(lambda x: x[i], stacked) for i in range(3)]
    masks = [make_masks(p, CFG.visual_group, f) for p, f in zip(models, FUSIONS)]
    stacked_masks = jax.tree.map(lambda *m: jnp.stack(m), *masks)
    image, spectrogram = inputs()
    together = jax.jit(jax.vmap(apply, in_axes=(0, 0, None, None, None)), static_argnums=4)(
        stacked, stacked_masks, image, spectrogram, CFG
    )
    alone_fn = jax.jit(apply, static_argnums=4)
    for i in range(3):
        alone = alone_fn(models[i], masks[i], image, spectrogram, CFG)
        np.testing.assert_allclose(together[i], alone, rtol=1e-5, atol=1e-6)


def relative_error(a, b):
    return max(
        float(np.abs(np.asarray(x) - np.asarray(y)).max() / (np.abs(np.asarray(y)).max() + 1e-30))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )


@pytest.mark.parametrize("conv,remat,unroll", [("shifted", False, 1), ("shifted", True, 1), ("lax", True, 1),
                                               ("shifted", True, 2), ("hybrid", False, 1), ("hybrid", True, 1),
                                               ("hybrid", False, 2)])
def test_conv_paths_and_remat_agree_with_lax_conv(params, conv, remat, unroll):
    masks = make_masks(params, CFG.visual_group, "second")
    image, spectrogram = inputs()
    labels = jnp.array([4, 5, 6])
    plain = CFG.__class__(**{**CFG.__dict__, "conv": "lax", "remat": False})
    other = CFG.__class__(**{**CFG.__dict__, "conv": conv, "remat": remat, "unroll": unroll})
    value = lambda cfg: jax.jit(jax.value_and_grad(loss_fn), static_argnums=(5, 6))(params, masks, image, spectrogram, labels, cfg, "masked")
    (loss_a, grad_a), (loss_b, grad_b) = value(plain), value(other)
    assert relative_error(loss_b, loss_a) < 1e-5
    assert relative_error(grad_b, grad_a) < 1e-5
    logits_a = apply(params, masks, image, spectrogram, plain)
    assert relative_error(apply(params, masks, image, spectrogram, other), logits_a) < 1e-5


def reference_loss(params, masks, image, spectrogram, labels):
    """Mean cross-entropy of the numpy loop's last-step logits, in float64."""
    logits = reference_forward(params, masks, image, spectrogram, CFG.channels)[0][:, -1]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_p[np.arange(len(labels)), labels].mean()


@pytest.mark.parametrize("conv", ["shifted", "lax", "hybrid"])
def test_gradients_agree_with_numpy_central_differences(params, conv):
    """Each parameter's gradient along a random direction against a float64 central difference of the numpy loop.

    Within 1e-5 of the sum of |gradient x direction| (measured: under 2e-7). eps is small because max pools
    and the ReLU have kinks: at eps = 1e-4 a difference straddles some and is 1e-3 off.
    """
    masks = make_masks(params, CFG.visual_group, "second")
    image, spectrogram = inputs()
    labels = np.array([4, 5, 6])
    cfg = CFG.__class__(**{**CFG.__dict__, "conv": conv})
    grads = jax.jit(jax.grad(loss_fn), static_argnums=(5, 6))(params, masks, image, spectrogram, jnp.asarray(labels), cfg, "masked")
    leaves, tree = jax.tree.flatten(jax.tree.map(lambda x: np.asarray(x, np.float64), params))
    rng, eps = np.random.default_rng(1), 1e-6
    for index, (leaf, grad) in enumerate(zip(leaves, jax.tree.leaves(grads))):
        direction = rng.standard_normal(leaf.shape)
        moved = lambda sign: jax.tree.unflatten(tree, [x + sign * eps * direction if i == index else x
                                                       for i, x in enumerate(leaves)])
        numeric = (reference_loss(moved(1), masks, image, spectrogram, labels)
                   - reference_loss(moved(-1), masks, image, spectrogram, labels)) / (2 * eps)
        analytic = np.sum(np.asarray(grad, np.float64) * direction)
        scale = np.sum(np.abs(np.asarray(grad, np.float64) * direction))  # no cancellation in the bound
        assert abs(analytic - numeric) < 1e-5 * scale, (jax.tree_util.keystr(jax.tree_util.tree_flatten_with_path(params)[0][index][0]), analytic, numeric)


# bfloat16 keeps 8 significant bits (relative rounding 2**-9 = 0.2%); through two layers, 5 steps and two
# dense layers the logits stay within 2% of their largest value, and the whole gradient within 5% (L2 norm).
BF16_LOGITS, BF16_GRADS = 2e-2, 5e-2


@pytest.mark.parametrize("conv", ["shifted", "lax", "hybrid"])
def test_bfloat16_compute_agrees_with_the_numpy_reference(params, conv):
    masks = make_masks(params, CFG.visual_group, "initial")
    image, spectrogram = inputs()
    f32 = CFG.__class__(**{**CFG.__dict__, "conv": conv})
    bf16 = CFG.__class__(**{**CFG.__dict__, "conv": conv, "compute_dtype": "bfloat16"})
    reference = reference_forward(params, masks, image, spectrogram, CFG.channels)[0]
    logits = apply(params, masks, image, spectrogram, bf16)
    assert logits.dtype == jnp.float32 and relative_error(logits, reference) < BF16_LOGITS
    labels = jnp.array([4, 5, 6])
    grads = lambda cfg: jax.jit(jax.grad(loss_fn), static_argnums=(5, 6))(params, masks, image, spectrogram, labels, cfg, "masked")
    flat = lambda tree: np.concatenate([np.ravel(leaf) for leaf in jax.tree.leaves(tree)])
    g_bf16, g_f32 = flat(grads(bf16)), flat(grads(f32))
    assert np.linalg.norm(g_bf16 - g_f32) / np.linalg.norm(g_f32) < BF16_GRADS
    # Every product of the program takes bfloat16 inputs and returns float32.
    text = jax.jit(apply, static_argnums=4).lower(params, masks, image, spectrogram, bf16).as_text()
    products = re.findall(r"stablehlo\.(?:dot_general|convolution).*", text)
    assert len(products) == 6  # image conv, audio projection, hidden conv, layer-2 conv, dense, output
    assert all(re.search(r"\(tensor<[^>]*xbf16>, tensor<[^>]*xbf16>\) -> tensor<[^>]*xf32>", p) for p in products)


@pytest.mark.parametrize("conv", ["lax", "hybrid"])
@pytest.mark.parametrize("precision", ["default", "high", "highest"])
def test_matmul_precision_reaches_every_product(params, precision, conv):
    masks = make_masks(params, CFG.visual_group, "initial")
    cfg = CFG.__class__(**{**CFG.__dict__, "conv": conv, "matmul_precision": precision})
    text = jax.jit(apply, static_argnums=4).lower(params, masks, *inputs(), cfg).as_text()
    products = re.findall(r"stablehlo\.(?:dot_general|convolution).*", text)
    # a dot reads "precision = [HIGH, HIGH]", a convolution "precision_config = [#stablehlo<precision HIGH>, ...]"
    levels = [re.findall(r"(?:precision = \[|precision )(DEFAULT|HIGHEST|HIGH)\b(?:, |>, #stablehlo<precision )(\w+)", p)
              for p in products]
    assert len(products) == 6 and all(found == [(precision.upper(),) * 2] for found in levels)


def test_bad_shapes_and_options_are_named(params):
    masks = make_masks(params, CFG.visual_group)
    image, spectrogram = inputs()
    with pytest.raises(AssertionError, match=r"has shape \(3, 5, 5\) but expected \(3, None, 11\)"):
        apply(params, masks, image, spectrogram[..., :5], CFG)
    with pytest.raises(AssertionError, match=r"has shape \(2, 5, 11\) but expected \(3, None, 11\)"):
        apply(params, masks, image, spectrogram[:2], CFG)
    with pytest.raises(AssertionError, match=r"image: expected \(batch, 28, 28\)"):
        apply(params, masks, image[:, :14], spectrogram, CFG)
    with pytest.raises(ValueError, match="model.conv = 'fft': expected one of auto, lax, shifted"):
        ModelConfig(conv="fft")
    with pytest.raises(ValueError, match="fusion = 'late': expected one of initial, second, fc"):
        make_masks(params, 4, "late")
    from conftest import micro

    from clstm_jax.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"model.visual_channels = 1 with sweep.family 'matched': expected no"):
        micro("sweep.family=matched", "model.visual_channels=1")
