"""The architecture language: parsing, canonical text, resolution for an input, cache keys.

Pure Python (no torch): these run wherever evo's core runs.
"""

from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evo.arch import (
    Activation,
    ArchParseError,
    ArchSpec,
    BatchNorm,
    Conv,
    Dense,
    Dropout,
    DWSep,
    Flatten,
    GlobalAvgPool,
    InvertedResidual,
    Pool,
    Recipe,
    default_lr,
    layer_text,
    parse_arch,
    recipe_text,
    resolve,
    spec_to_text,
)
from evo.errors import EvoError

DIGITS = (1, 8, 8)
MNIST = (1, 28, 28)
CIFAR = (3, 32, 32)

EVERY_KIND = (
    "conv(16, k=5, s=2, p=valid) bn relu conv(8, k=2, p=3) relu6 maxpool(3, s=1) "
    "dwsep(24, k=5, act=hardswish) ir(24, e=1) ir(24, e=4, k=7, s=2, se=on, act=hardswish, n=2) "
    "leakyrelu(0.2) avgpool(2) gap dropout(0.3) dense(32) bn hardswish dense(10)"
)


# --------------------------------------------------------------------------------------------
# Parsing


def test_parse_fills_defaults_and_types():
    spec = parse_arch("conv(16) bn relu maxpool ir(24, s=2, se=on) gap dropout(0.2) dense(10)")
    assert spec.layers == (
        Conv(16, 3, 1, "same"),
        BatchNorm(),
        Activation("relu"),
        Pool("max", 2, 2),
        InvertedResidual(24, 6.0, 3, 2, True, "relu6", 1),
        GlobalAvgPool(),
        Dropout(0.2),
        Dense(10),
    )
    assert spec.recipe == Recipe()


def test_whitespace_is_free_as_in_ponyge2_phenotypes():
    tight = parse_arch("conv(16,k=3)bn relu maxpool(2)gap|lr=0.1,batch_size=64")
    loose = parse_arch(
        "  conv(  16 ,  k = 3 )\n\tbn   relu maxpool( 2 )  gap  |  lr= 0.1   batch_size =64  "
    )
    assert tight == loose


def test_names_are_case_insensitive_and_aliases_map_to_one_spelling():
    a = parse_arch("Conv2D(8, kernel=5, stride=2, padding=valid) BatchNorm HSwish FC(12)")
    b = parse_arch("conv(8, k=5, s=2, p=valid) bn hardswish dense(12)")
    assert a == b
    c = parse_arch("mbconv(8, t=4, se=yes, act=hswish) lrelu(alpha=0.3) linear(units=5)")
    d = parse_arch("ir(8, e=4, se=on, act=hardswish) leakyrelu(0.3) dense(5)")
    assert c == d


def test_positional_and_keyword_arguments_bind_like_python():
    assert parse_arch("conv(16, 5, 2, 0)") == parse_arch("conv(filters=16, k=5, s=2, p=0)")
    assert parse_arch("maxpool(3)").layers[0] == Pool("max", 3, 3)  # stride defaults to window
    assert parse_arch("avgpool(3, s=1)").layers[0] == Pool("avg", 3, 1)


def test_comments_are_ignored():
    assert parse_arch("conv(8)  # a stem\nbn # norm\n") == parse_arch("conv(8) bn")


def test_numbers_in_any_spelling_give_the_same_spec():
    assert parse_arch("dense(4) | lr=0.001") == parse_arch("dense(4) | lr=1e-3")
    assert parse_arch("dense(4) | lr=.001") == parse_arch("dense(4) | lr=1E-03")
    assert parse_arch("ir(8, e=6)") == parse_arch("ir(8, e=6.0)")


def test_repeat_count_is_kept_in_the_spec_text():
    spec = parse_arch("ir(24, s=2, n=3) dwsep(8, n=2)")
    assert spec.layers[0].repeat == 3
    assert "ir(24, e=6, k=3, s=2, se=off, act=relu6, n=3)" in spec_to_text(spec)
    assert "dwsep(8, k=3, s=1, act=relu, n=2)" in spec_to_text(spec)


# Every way a text can fail to parse: (text, words in the message, offending token, column).
PARSE_ERRORS = [
    ("conv(16) $", "unexpected character", "$", 10),
    ("conv(16) convv(8)", "unknown layer", "convv", 10),
    ("bnrelu", "unknown layer", "bnrelu", 1),
    ("16", "expected a layer name", "16", 1),
    ("conv(16) (", "expected a layer name", "(", 10),
    ("", "expected a layer", "", 1),
    ("   ", "expected a layer", "", 4),
    ("| lr=0.1", "expected a layer", "|", 1),
    ("conv", "conv needs filters", "conv", 1),
    ("bn conv()", "conv needs filters", "conv", 4),
    ("dense(units=)", "expected a value after 'units='", ")", 13),
    ("dropout()", "dropout needs p", "dropout", 1),
    ("conv(16, q=3)", "conv has no parameter", "q", 10),
    ("conv(16, filters=8)", "conv got filters twice", "filters", 10),
    ("conv(k=3, k=5, filters=2)", "conv got k twice", "k", 11),
    ("bn(3)", "too many arguments for bn", "3", 4),
    ("conv(16, 3, 1, 1, 1)", "too many arguments for conv", "1", 19),
    ("conv(16, k=3, 1)", "positional argument after a keyword argument", "1", 15),
    ("conv(16.5)", "conv filters must be an integer from 1 to 4096", "16.5", 6),
    ("conv(0)", "conv filters must be an integer from 1 to 4096", "0", 6),
    ("conv(5000)", "conv filters must be an integer from 1 to 4096", "5000", 6),
    ("conv(same)", "conv filters must be an integer", "same", 6),
    ("conv(8, k=16)", "conv k must be an integer from 1 to 15", "16", 11),
    ("conv(8, s=5)", "conv s must be an integer from 1 to 4", "5", 11),
    ("conv(8, p=full)", "conv p must be same, valid or an integer from 0 to 15", "full", 11),
    ("ir(16, k=4)", "ir k must be an odd integer from 1 to 15", "4", 10),
    ("dwsep(16, k=2)", "dwsep k must be an odd integer", "2", 13),
    ("ir(16, e=0.5)", "ir e must be a number in [1, 10]", "0.5", 10),
    ("ir(16, act=tanh)", "ir act must be one of hardswish, leakyrelu, relu, relu6", "tanh", 12),
    ("ir(16, se=maybe)", "ir se must be on or off", "maybe", 11),
    ("ir(16, n=0)", "ir n must be an integer from 1 to 16", "0", 10),
    ("maxpool(1)", "maxpool k must be an integer from 2 to 8", "1", 9),
    ("dropout(1)", "dropout p must be a number in [0, 1)", "1", 9),
    ("dropout(1.5)", "dropout p must be a number in [0, 1)", "1.5", 9),
    ("leakyrelu(2)", "leakyrelu slope must be a number in [0, 1]", "2", 11),
    ("dense(0)", "dense units must be an integer from 1 to 65536", "0", 7),
    ("conv(16", "expected ',' or ')' in conv(...)", "", 8),
    ("conv(16 3)", "expected ',' or ')' in conv(...)", "3", 9),
    ("conv(16,)", "expected a value for conv", ")", 9),
    ("conv(,16)", "expected a value for conv", ",", 6),
    ("gap conv(8)", "conv needs a feature map but follows gap", "conv", 5),
    ("conv(8) dense(10) maxpool", "maxpool needs a feature map but follows dense", "maxpool", 19),
    ("conv(8) flatten gap", "gap needs a feature map but follows flatten", "gap", 17),
    ("dense(8) ir(8)", "ir needs a feature map but follows dense", "ir", 10),
    ("conv(8) |", "expected a recipe setting after '|'", "", 10),
    ("conv(8) | foo=1", "unknown recipe setting", "foo", 11),
    ("conv(8) | 0.1", "expected a recipe setting such as lr=0.01", "0.1", 11),
    ("conv(8) | lr=0.1 lr=0.2", "recipe sets lr twice", "lr", 18),
    ("conv(8) | lr 0.1", "expected '=' after lr", "0.1", 14),
    ("conv(8) | lr=", "expected a value for lr", "", 14),
    ("conv(8) | optimizer=lbfgs", "optimizer must be one of adam, adamw, momentum", "lbfgs", 21),
    ("conv(8) | lr=0", "lr must be a number in (0, 1]", "0", 14),
    ("conv(8) | lr=fast", "lr must be a number", "fast", 14),
    ("conv(8) | batch_size=0.5", "batch_size must be an integer from 1 to 4096", "0.5", 22),
    ("conv(8) | schedule=linear", "schedule must be one of constant, cosine, step", "linear", 20),
    ("conv(8) | augment=maybe", "augment must be on or off", "maybe", 19),
    ("conv(8) | label_smoothing=0.9", "label_smoothing must be a number in [0, 0.5]", "0.9", 27),
    ("conv(8) | weight_decay=1", "weight_decay must be a number in [0, 0.1]", "1", 24),
    ("conv(8) | epochs_mult=0", "epochs_mult must be a number in (0, 10]", "0", 23),
    ("conv(8) | lr=0.1 | lr=0.2", "expected a recipe setting such as", "|", 18),
    ("conv(8) | lr=0.1 )", "expected a recipe setting such as", ")", 18),
]


@pytest.mark.parametrize(("text", "words", "token", "col"), PARSE_ERRORS)
def test_every_parse_error_names_the_token_and_its_column(text, words, token, col):
    with pytest.raises(ArchParseError) as info:
        parse_arch(text)
    err = info.value
    assert isinstance(err, EvoError)
    assert words in err.message
    assert err.token == token
    assert err.col == col
    assert f"column {col}" in err.message
    assert err.line == 1
    assert text[col - 1:].startswith(token)


def test_parse_error_on_a_later_line_names_line_and_column():
    with pytest.raises(ArchParseError) as info:
        parse_arch("conv(8)\nbn\n  relu7")
    assert (info.value.line, info.value.col, info.value.token) == (3, 3, "relu7")
    assert "line 3, column 3" in info.value.message


def test_unknown_layer_hint_lists_the_layers():
    with pytest.raises(ArchParseError) as info:
        parse_arch("sigmoid")
    assert "conv, dwsep, ir, bn" in info.value.hint
    with pytest.raises(ArchParseError) as info:
        parse_arch("conv(8, q=1)")
    assert info.value.hint == "usage: conv(filters, k=3, s=1, p=same)"


# --------------------------------------------------------------------------------------------
# Canonical text and round trips


def test_spec_text_round_trips_for_every_layer_kind():
    spec = parse_arch(EVERY_KIND + " | optimizer=nesterov wd=0.0005 augment=on epochs=1.5")
    text = spec_to_text(spec)
    assert parse_arch(text) == spec
    assert spec_to_text(parse_arch(text)) == text
    assert text.endswith(
        "| optimizer=nesterov lr=0.1 batch_size=32 weight_decay=0.0005 epochs_mult=1.5 "
        "schedule=cosine label_smoothing=0 augment=on"
    )


_filters = st.integers(1, 96)
_odd = st.sampled_from([1, 3, 5, 7])
_act = st.sampled_from(["relu", "relu6", "hardswish", "leakyrelu"])
_map_layers = st.one_of(
    st.builds(Conv, _filters, st.integers(1, 7), st.integers(1, 4),
              st.one_of(st.sampled_from(["same", "valid"]), st.integers(0, 4))),
    st.builds(DWSep, _filters, _odd, st.integers(1, 3), _act, st.integers(1, 3)),
    st.builds(InvertedResidual, _filters, st.sampled_from([1, 2.5, 3, 4, 6]), _odd,
              st.integers(1, 3), st.booleans(), _act, st.integers(1, 3)),
    st.builds(Pool, st.sampled_from(["max", "avg"]), st.integers(2, 4), st.integers(1, 4)),
    st.just(BatchNorm()),
    st.builds(Activation, _act, st.sampled_from([0.01, 0.1, 0.25])),
    st.builds(Dropout, st.sampled_from([0.0, 0.1, 0.5])),
)
_vector_layers = st.one_of(
    st.builds(Dense, st.integers(1, 64)),
    st.just(BatchNorm()),
    st.builds(Activation, _act),
    st.builds(Dropout, st.sampled_from([0.0, 0.2])),
)
_recipes = st.builds(
    Recipe,
    st.sampled_from(["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop"]),
    st.one_of(st.none(), st.sampled_from([0.1, 1e-3, 3e-4, 0.05])),
    st.sampled_from([16, 32, 128]),
    st.sampled_from([0.0, 1e-5, 5e-4]),
    st.sampled_from([0.5, 1.0, 2.0]),
    st.sampled_from(["constant", "cosine", "step"]),
    st.sampled_from([0.0, 0.1]),
    st.booleans(),
)


@st.composite
def specs(draw) -> ArchSpec:
    layers = draw(st.lists(_map_layers, max_size=8))
    head = draw(st.sampled_from(["none", "gap", "flatten", "dense"]))
    if head in ("gap", "flatten"):
        layers.append(GlobalAvgPool() if head == "gap" else Flatten())
    if head != "none":
        layers += draw(st.lists(_vector_layers, max_size=4))
    if not layers:
        layers = [Dense(3)]
    return ArchSpec(tuple(layers), draw(_recipes))


@given(specs())
def test_text_round_trip_property(spec):
    text = spec_to_text(spec)
    assert parse_arch(text) == spec
    # Whitespace is free: spread spaces around every punctuation mark.
    spaced = re.sub(r"([(),=|])", r"  \1 ", text)
    assert parse_arch(spaced) == spec


@given(specs(), st.sampled_from([DIGITS, MNIST, CIFAR, (3, 5, 9), (2, 1, 1)]),
       st.integers(1, 12))
def test_resolved_canonical_text_is_a_fixed_point(spec, shape, classes):
    resolved = resolve(spec, shape, classes)
    again = resolve(parse_arch(resolved.canonical_text()), shape, classes)
    assert again.canonical_text() == resolved.canonical_text()
    assert again.key() == resolved.key()
    assert again.dropped == ()
    def built(r):  # everything but the phenotype position each layer came from
        return [(i.layer, i.in_shape, i.out_shape, i.bias, i.residual) for i in r.layers]

    assert built(again) == built(resolved)


@given(specs(), st.sampled_from([DIGITS, MNIST, CIFAR, (3, 5, 9), (1, 1, 1)]))
def test_every_spec_resolves_to_valid_shapes_ending_in_the_classifier(spec, shape):
    resolved = resolve(spec, shape, 7)
    previous = shape
    for item in resolved.layers:
        assert item.in_shape == previous
        assert all(v >= 1 for v in item.out_shape)
        previous = item.out_shape
    assert previous == (7,)
    assert isinstance(resolved.layers[-1].layer, Dense)


# --------------------------------------------------------------------------------------------
# Resolution rules


def _texts(resolved) -> list[str]:
    return [item.text for item in resolved.layers]


def test_pooling_that_would_shrink_below_1x1_is_dropped_and_recorded():
    spec = parse_arch("conv(8) maxpool maxpool maxpool maxpool avgpool(3)")
    at8 = resolve(spec, DIGITS, 10)
    assert [item.out_shape for item in at8.layers][:4] == [(8, 8, 8), (8, 4, 4), (8, 2, 2),
                                                          (8, 1, 1)]
    assert _texts(at8) == ["conv(8, k=3, s=1, p=1)", "maxpool(2, s=2)", "maxpool(2, s=2)",
                           "maxpool(2, s=2)", "gap", "dense(10)"]
    assert at8.dropped == (
        "layer 5 maxpool(2, s=2): dropped, its 2x2 window is larger than the 1x1 map",
        "layer 6 avgpool(3, s=3): dropped, its 3x3 window is larger than the 1x1 map",
    )
    at64 = resolve(spec, (1, 64, 64), 10)
    assert at64.dropped == ()
    assert _texts(at64)[-3:] == ["avgpool(3, s=3)", "gap", "dense(10)"]  # 4x4 -> 1x1 map


def test_strides_with_no_effect_on_a_1x1_map_are_written_as_the_default():
    spec = parse_arch("conv(8, s=2) conv(8, s=2) conv(8, s=2) conv(8, s=2) ir(8, s=2) "
                      "dwsep(8, s=3)")
    at8 = resolve(spec, DIGITS, 10)
    assert [item.out_shape[1:] for item in at8.layers[:6]] == [(4, 4), (2, 2), (1, 1), (1, 1),
                                                              (1, 1), (1, 1)]
    assert [item.layer.stride for item in at8.layers[:6]] == [2, 2, 2, 1, 1, 1]
    assert at8.dropped == (
        "layer 4 conv(8, k=3, s=2, p=same): stride 2 has no effect on a 1x1 map; written as "
        "stride 1",
        "layer 5 ir(8, e=6, k=3, s=2, se=off, act=relu6): stride 2 has no effect on a 1x1 map; "
        "written as stride 1",
        "layer 6 dwsep(8, k=3, s=3, act=relu): stride 3 has no effect on a 1x1 map; written as "
        "stride 1",
    )
    # With no effect the block's input and output shapes match: the shortcut is used.
    assert at8.layers[4].residual


def test_strides_that_sample_one_window_get_one_spelling():
    # On a 2x2 map with padding 1, strides 2, 3 and 4 all sample only the first 3x3 window.
    texts = {
        resolve(parse_arch(f"conv(4, s={s}) relu"), (1, 2, 2), 3).network_text()
        for s in (2, 3, 4)
    }
    assert texts == {"conv(4, k=3, s=2, p=1) relu gap dense(3)"}
    # A pooling window that covers the whole map: the stride is written as the window size.
    pooled = resolve(parse_arch("maxpool(2, s=1)"), (1, 2, 2), 3)
    assert _texts(pooled) == ["maxpool(2, s=2)", "gap", "dense(3)"]
    assert pooled.dropped == ()


def test_a_kernel_larger_than_its_padded_input_gets_same_padding():
    resolved = resolve(parse_arch("conv(8, k=7, p=valid) conv(8, k=7, p=valid)"), DIGITS, 10)
    assert [item.out_shape for item in resolved.layers[:2]] == [(8, 2, 2), (8, 2, 2)]
    assert _texts(resolved)[:2] == ["conv(8, k=7, s=1, p=0)", "conv(8, k=7, s=1, p=3)"]
    assert resolved.dropped == (
        "layer 2 conv(8, k=7, s=1, p=valid): the 7x7 kernel does not fit the 2x2 input with "
        "padding 0; padding raised to 3",
    )


def test_non_square_inputs_drop_per_layer_when_either_side_is_too_small():
    resolved = resolve(parse_arch("maxpool maxpool conv(4, s=2)"), (1, 8, 2), 2)
    assert [item.out_shape for item in resolved.layers[:2]] == [(1, 4, 1), (4, 2, 1)]
    assert len(resolved.dropped) == 1 and "layer 2 maxpool" in resolved.dropped[0]


def test_mobilenetv2_at_8x8_keeps_every_block_and_drops_two_downsamplings():
    text = ("conv(32, k=3, s=2) bn relu6 ir(16, e=1) ir(24, s=2, n=2) ir(32, s=2, n=3) "
            "ir(64, s=2, n=4) ir(96, n=3) ir(160, s=2, n=3) ir(320) conv(1280, k=1) bn relu6 "
            "gap dropout(0.2)")
    resolved = resolve(parse_arch(text), DIGITS, 10)
    blocks = [item for item in resolved.layers if isinstance(item.layer, InvertedResidual)]
    assert len(blocks) == 17
    assert [b.out_shape[1] for b in blocks] == [4, 2, 2, 1, 1, 1] + [1] * 11
    assert len(resolved.dropped) == 2
    assert resolved.dropped[0].startswith("layer 7 ir(64, e=6, k=3, s=2")
    assert resolved.dropped[1].startswith("layer 9 ir(160, e=6, k=3, s=2")
    # MobileNetV2's 10 shortcuts; the two blocks made stride 1 change width, so get none.
    assert sum(b.residual for b in blocks) == 10


def test_implicit_flatten_classifier_and_no_op_layers():
    resolved = resolve(parse_arch("conv(8) dense(16) relu dropout(0)"), DIGITS, 10)
    assert _texts(resolved) == ["conv(8, k=3, s=1, p=1)", "flatten", "dense(16)", "relu",
                                "dense(10)"]
    assert resolved.layers[1].out_shape == (512,)
    assert resolved.notes == ("layer 4 dropout(0) removed: it has no effect",)

    last_dense = resolve(parse_arch("conv(8) gap dense(64)"), DIGITS, 10)
    assert _texts(last_dense)[-1] == "dense(10)"
    assert last_dense.notes == (
        "layer 3 dense(64): the final dense layer is the classifier; width set to 10 classes",
    )
    assert resolve(parse_arch("dense(3)"), DIGITS, 3).network_text() == "flatten dense(3)"
    # Flattening a 1x1 map is global average pooling: one spelling.
    one = resolve(parse_arch("conv(8, k=8, p=0) flatten"), DIGITS, 10)
    assert _texts(one) == ["conv(8, k=8, s=1, p=0)", "gap", "dense(10)"]


def test_bias_is_dropped_before_batch_norm_and_residuals_need_equal_shapes():
    resolved = resolve(parse_arch("conv(8) bn conv(8) relu ir(8) ir(8, s=2) ir(16) gap "
                                  "dense(4) bn"), CIFAR, 10)
    biases = [(item.text, item.bias) for item in resolved.layers
              if isinstance(item.layer, Conv | Dense)]
    assert biases == [("conv(8, k=3, s=1, p=1)", False), ("conv(8, k=3, s=1, p=1)", True),
                      ("dense(4)", False), ("dense(10)", True)]
    residual = [item.residual for item in resolved.layers
                if isinstance(item.layer, InvertedResidual)]
    assert residual == [True, False, False]


def test_repeat_expands_into_blocks_with_stride_on_the_first_only():
    resolved = resolve(parse_arch("ir(8, e=3, s=2, n=3, se=on)"), CIFAR, 10)
    blocks = [item.layer for item in resolved.layers[:3]]
    assert blocks == [InvertedResidual(8, 3, 3, s, True, "relu6") for s in (2, 1, 1)]
    assert resolved.layers[2].source == 1
    assert resolve(parse_arch("dwsep(8, n=2)"), CIFAR, 10).network_text().count("dwsep") == 2


def test_resolve_rejects_bad_shapes_and_class_counts():
    spec = parse_arch("conv(8)")
    for shape in [(8, 8), (0, 8, 8), (1, 8, 0)]:
        with pytest.raises(EvoError, match="input shape"):
            resolve(spec, shape, 10)  # type: ignore[arg-type]
    with pytest.raises(EvoError, match="classes"):
        resolve(spec, DIGITS, 0)


# --------------------------------------------------------------------------------------------
# Cache keys


def test_equal_networks_share_a_key():
    same = [
        "conv(16) bn relu dense(10)",
        "conv( 16 , k=3 , s=1, p=same ) BN relu flatten dense(7)",
        "conv(16, 3, 1, 1) bn relu flatten dropout(0) dense(99) | optimizer=adam lr=0.01",
        "conv(16) bn relu | batch_size=32 weight_decay=0 augment=off",
    ]
    keys = {resolve(parse_arch(t), DIGITS, 10).key() for t in same}
    assert len(keys) == 1
    # Dropped downsampling: the same network at 8x8, a different one at 32x32.
    deep = parse_arch("conv(8) maxpool maxpool maxpool maxpool")
    shallow = parse_arch("conv(8) maxpool maxpool maxpool")
    assert resolve(deep, DIGITS, 10).key() == resolve(shallow, DIGITS, 10).key()
    assert resolve(deep, CIFAR, 10).key() != resolve(shallow, CIFAR, 10).key()


def test_different_recipes_and_networks_get_different_keys():
    base = "conv(16) bn relu gap"
    variants = [
        "", "| optimizer=sgd", "| lr=0.02", "| batch_size=64", "| weight_decay=0.0001",
        "| epochs_mult=2", "| schedule=step", "| label_smoothing=0.1", "| augment=on",
    ]
    keys = [resolve(parse_arch(f"{base} {v}"), DIGITS, 10).key() for v in variants]
    assert len(set(keys)) == len(variants)
    others = ["conv(16) bn relu6 gap", "conv(17) bn relu gap", "conv(16, k=5) bn relu gap"]
    assert not {resolve(parse_arch(t), DIGITS, 10).key() for t in others} & set(keys)
    assert resolve(parse_arch(base), DIGITS, 10).key() != resolve(parse_arch(base), DIGITS,
                                                                  5).key()


def test_key_is_the_sha256_of_the_canonical_text_and_is_pinned():
    resolved = resolve(parse_arch("conv(8) bn relu gap"), DIGITS, 10)
    text = resolved.canonical_text()
    assert text == (
        "conv(8, k=3, s=1, p=1) bn relu gap dense(10) | optimizer=adam lr=0.01 batch_size=32 "
        "weight_decay=0 epochs_mult=1 schedule=cosine label_smoothing=0 augment=off"
    )
    assert resolved.key() == hashlib.sha256(text.encode()).hexdigest()
    # Pinned: changing the canonical form invalidates every stored evaluation cache.
    assert resolved.key() == hashlib.sha256(
        b"conv(8, k=3, s=1, p=1) bn relu gap dense(10) | optimizer=adam lr=0.01 batch_size=32 "
        b"weight_decay=0 epochs_mult=1 schedule=cosine label_smoothing=0 augment=off"
    ).hexdigest()
    assert resolved.network_text() == "conv(8, k=3, s=1, p=1) bn relu gap dense(10)"


# --------------------------------------------------------------------------------------------
# Recipe and direct construction


def test_recipe_defaults_and_per_optimizer_learning_rates():
    assert Recipe() == Recipe("adam", 0.01, 32, 0.0, 1.0, "cosine", 0.0, False)
    for opt in ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop"):
        assert parse_arch(f"gap | optimizer={opt}").recipe.lr == default_lr(opt)
        assert Recipe(optimizer=opt).lr == default_lr(opt)
    assert parse_arch("gap | optimizer=sgd lr=0.3").recipe.lr == 0.3
    assert recipe_text(Recipe(lr=1e-5, weight_decay=5e-4)) == (
        "optimizer=adam lr=1e-05 batch_size=32 weight_decay=0.0005 epochs_mult=1 "
        "schedule=cosine label_smoothing=0 augment=off"
    )


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: Recipe(optimizer="lbfgs"), "Recipe.optimizer must be one of"),
        (lambda: Recipe(lr=2.0), "Recipe.lr must be a number in (0, 1]"),
        (lambda: Recipe(batch_size=0), "Recipe.batch_size must be an integer"),
        (lambda: Recipe(augment=1), "Recipe.augment must be on or off"),  # type: ignore[arg-type]
        (lambda: Conv(0), "Conv.filters must be an integer from 1 to 4096"),
        (lambda: Conv(8, padding="full"), "Conv.padding must be same, valid"),
        (lambda: InvertedResidual(8, kernel=4), "InvertedResidual.kernel must be an odd"),
        (lambda: DWSep(8, act="tanh"), "DWSep.act must be one of"),
        (lambda: Activation("gelu"), "Activation.kind must be one of"),
        (lambda: Pool("min"), "Pool.kind must be max or avg"),
        (lambda: Dropout(1.0), "Dropout.p must be a number in [0, 1)"),
        (lambda: Dense(True), "Dense.units must be an integer"),  # type: ignore[arg-type]
    ],
)
def test_layers_and_recipes_built_in_python_are_validated(make, words):
    with pytest.raises(EvoError) as info:
        make()
    assert words in str(info.value)


def test_layer_text_of_every_kind():
    spec = parse_arch(EVERY_KIND)
    assert [layer_text(layer) for layer in spec.layers] == [
        "conv(16, k=5, s=2, p=valid)", "bn", "relu", "conv(8, k=2, s=1, p=3)", "relu6",
        "maxpool(3, s=1)", "dwsep(24, k=5, s=1, act=hardswish)",
        "ir(24, e=1, k=3, s=1, se=off, act=relu6)",
        "ir(24, e=4, k=7, s=2, se=on, act=hardswish, n=2)", "leakyrelu(0.2)", "avgpool(2, s=2)",
        "gap", "dropout(0.3)", "dense(32)", "bn", "hardswish", "dense(10)",
    ]


_VOCAB = ["conv", "ir", "dense", "gap", "bn", "relu", "maxpool", "dropout", "(", ")", ",", "=",
          "|", "k", "s", "e", "n", "se", "on", "lr", "optimizer", "adam", "3", "16", "0.5",
          "1e-3", "same", " ", "\n", "#", "$", "٣"]


@given(st.one_of(st.text(max_size=40), st.lists(st.sampled_from(_VOCAB), max_size=25).map(
    "".join)))
def test_any_text_parses_or_raises_arch_parse_error(text):
    try:
        spec = parse_arch(text)
    except ArchParseError as err:
        assert err.col >= 1 and err.line >= 1
        assert "column" in err.message
    else:
        assert parse_arch(spec_to_text(spec)) == spec
        resolve(spec, DIGITS, 10)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("conv(" + "1" * 5000 + ")", "number of 5,000 characters (the limit is 32) at column 6"),
        ("dropout(0." + "1" * 5000 + ")", "number of 5,002 characters"),
        ("conv(16) | lr=" + "9" * 400, "number of 400 characters"),
        ("conv(16) " + "x" * 300, "name of 300 characters"),
        ("relu " * 25_000, "architecture text is 125,000 characters; the limit is 100,000"),
    ],
)
def test_numbers_names_and_texts_have_bounds_with_a_clear_message(text, words):
    with pytest.raises(ArchParseError) as err:  # a 5,000-digit int was a ValueError traceback
        parse_arch(text)
    assert words in err.value.message and err.value.hint
    assert len(str(err.value)) < 300  # the token is shortened, not echoed whole


def test_numbers_at_the_token_limit_still_parse():
    spec = parse_arch("conv(0000000000000000000000000016) | lr=0.000000000000000000000000000001")
    assert spec.layers[0] == Conv(16) and spec.recipe.lr == 1e-30
