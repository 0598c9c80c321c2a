"""Every model builds from its real config on the inputs it claims, learns a step, and rejects misfits."""

import pytest
import torch

from sweeplab.config import ConfigError
from sweeplab.models import ACTIVATIONS, count_parameters, create_act, create_model, create_norm

SIGNAL, IMAGE, GREY, VECTOR = (1, 40), (3, 16, 16), (1, 28, 28), (20,)
TAKES = {
    "linear": [SIGNAL, IMAGE, VECTOR],
    "mlp": [SIGNAL, IMAGE, VECTOR],
    "cnn": [SIGNAL, IMAGE, GREY],
    "preact_resnet": [SIGNAL, IMAGE],
    "preact_convnet": [SIGNAL, IMAGE],
    "torchvision": [IMAGE, GREY],
}


@pytest.mark.parametrize(("name", "shape"), [(m, s) for m, shapes in TAKES.items() for s in shapes])
def test_model_forward_backward(make_cfg, name, shape):
    model = create_model(make_cfg(f"model={name}").model, shape, num_classes=5)
    x = torch.randn(4, *shape, requires_grad=False)
    logits = model(x)
    assert logits.shape == (4, 5)
    logits.logsumexp(1).mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_norm_options_build(make_cfg, model, norm):
    net = create_model(make_cfg(f"model={model}", f"model.norm={norm}").model, SIGNAL, 10)
    norms = {type(m).__name__ for m in net.modules() if "Norm" in type(m).__name__}
    layer_norm = "LayerNorm" if model == "mlp" else "GroupNorm"  # GroupNorm(1, C) on feature maps
    assert norms == {"none": set(), "batch": {"BatchNorm1d"}, "layer": {layer_norm}}[norm]


def test_mlp_shape_and_parameter_count(make_cfg):
    net = create_model(make_cfg("model.hidden=[100,50]").model, (3, 32, 32), 10)
    assert count_parameters(net) == (3072 * 100 + 100) + (100 * 50 + 50) + (50 * 10 + 10)


def test_linear_model_is_softmax_regression(make_cfg):
    net = create_model(make_cfg("model=linear").model, (1, 28, 28), 10)
    assert count_parameters(net) == 784 * 10 + 10


def test_cnn_without_conv_activation_has_activations_only_in_the_head(make_cfg):
    cfg = make_cfg("model=cnn", "model.conv_activation=false", "model.hidden=[32]")
    net = create_model(cfg.model, SIGNAL, 10)
    assert sum(isinstance(m, torch.nn.ReLU) for m in net.modules()) == 1


def test_cnn_layouts_of_the_reference_reports(make_cfg):
    # PyTorch's CIFAR-10 tutorial net (report 004): 5x5 valid convs 6 and 16, dense 120 and 84
    lenet = make_cfg(
        "model=cnn",
        "model.channels=[6,16]",
        "model.kernel_size=5",
        "model.padding=valid",
        "model.hidden=[120,84]",
    )
    assert count_parameters(create_model(lenet.model, (3, 32, 32), 10)) == 62_006
    # report 002 Q6: eight 3x3 convs, pooled after the 1st, 2nd, 4th, 6th and 8th (32 -> 1 pixel)
    q6 = make_cfg(
        "model=cnn",
        "model.channels=[8,16,32,32,64,64,64,64]",
        "model.pool_after=[1,2,4,6,8]",
        "model.hidden=[64]",
    )
    model = create_model(q6.model, (3, 32, 32), 10)
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in model.modules()) == 5
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears[0].in_features == 64  # 64 channels of 1x1 after five poolings
    with pytest.raises(ConfigError, match=r"model\.pool_after: names conv layers 1\.\.2"):
        create_model(make_cfg("model=cnn", "model.pool_after=[3]").model, (3, 32, 32), 10)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_every_activation_exists(name):
    assert isinstance(create_act(name), torch.nn.Module)


def test_layer_norm_on_feature_maps_normalises_each_sample():
    norm = create_norm("layer", 8, 2)
    out = norm(torch.randn(3, 8, 5, 5) * 7 + 2)
    assert torch.allclose(out.mean((1, 2, 3)), torch.zeros(3), atol=1e-5)


@pytest.mark.parametrize(
    ("overrides", "shape", "message"),
    [
        (
            ["model.activation=swishy"],
            SIGNAL,
            r"model\.activation: unknown activation 'swishy'; choose one of: relu",
        ),
        (
            ["model.norm=weight"],
            SIGNAL,
            r"model\.norm: unknown normalisation 'weight'; choose one of: none, batch",
        ),
        (["model.hidden=[]"], SIGNAL, r"model\.hidden: needs at least one positive layer width"),
        (["model.dropout=1.5"], SIGNAL, r"model\.dropout: is a probability in \[0, 1\), got 1.5"),
        (
            ["model=cnn"],
            VECTOR,
            r"model: cnn needs signals \(C, L\) or images \(C, H, W\), but the inputs have "
            r"shape \(20,\) \(flat vectors, e.g. after preprocess=pca\)",
        ),
        (
            ["model=cnn", "model.channels=[8,8,8,8,8,8]"],
            SIGNAL,
            r"model\.channels: conv layer 6 of 6 shrinks inputs of shape \(1, 40\) to nothing",
        ),
        (["model=cnn", "model.kernel_size=4"], SIGNAL, r"model\.kernel_size: must be odd and positive"),
        (["model=torchvision"], SIGNAL, r"model: torchvision models take 1- or 3-channel images"),
        (["model=torchvision", "model.arch=resnet9000"], IMAGE, r"model\.arch: unknown torchvision"),
        (["+model.hiddn=[3]"], SIGNAL, r"model\.hiddn: unknown option; model takes: hidden, activation"),
    ],
)
def test_bad_model_configs_name_the_field(make_cfg, overrides, shape, message):
    with pytest.raises(ConfigError, match=message):
        create_model(make_cfg(*overrides).model, shape, 10)


def test_model_that_cannot_take_the_input_fails_at_build():
    # 7x7 images through an AlexNet: its convolutions shrink them to nothing
    with pytest.raises(ConfigError, match=r"model: torchvision cannot take inputs of shape \(3, 7, 7\)"):
        create_model({"name": "torchvision", "arch": "alexnet", "pretrained": False}, (3, 7, 7), 10)


def test_the_course_preact_convnet_has_its_22_1m_parameters(make_cfg):
    """Report 001 §4a's net, as the UvA Deep Learning 1 practical defines it, on 32x32 RGB images."""
    net = create_model(make_cfg("model=preact_convnet").model, (3, 32, 32), 10)
    assert count_parameters(net) == 22_095_370
    pairs = [m for m in net.modules() if type(m).__name__ == "PreActPair"]
    assert len(pairs) == 9 and sum(isinstance(m, torch.nn.MaxPool2d) for m in net.modules()) == 5


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """torchvision state dicts saved as torchvision's own checkpoint files are: torch.save of the dict."""
    import torchvision

    folder = tmp_path_factory.mktemp("weights")
    for arch in ("mobilenet_v3_small", "squeezenet1_1"):
        torch.manual_seed(0)
        torch.save(torchvision.models.get_model(arch, weights=None).state_dict(), folder / f"{arch}.pth")
    return folder


def test_weights_from_a_torchvision_checkpoint_are_loaded_and_the_head_is_new(make_cfg, checkpoints):
    path = checkpoints / "mobilenet_v3_small.pth"
    cfg = make_cfg("model=torchvision", "model.arch=mobilenet_v3_small", f"model.weights={path}")
    net = create_model(cfg.model, IMAGE, num_classes=10)
    saved, loaded = torch.load(path), net.state_dict()
    assert loaded["classifier.3.weight"].shape == (10, 1024)  # the head, for this data's classes
    body = [k for k in saved if not k.startswith("classifier.3.")]
    assert len(body) > 100 and all(torch.equal(saved[k], loaded[k]) for k in body)


def test_weights_of_another_architecture_a_missing_or_a_damaged_file_are_refused(
    make_cfg, checkpoints, tmp_path
):
    def build(path):
        cfg = make_cfg("model=torchvision", "model.arch=mobilenet_v3_small", f"model.weights={path}")
        return create_model(cfg.model, IMAGE, num_classes=10)

    with pytest.raises(
        ConfigError, match=r"model.weights: .*squeezenet1_1.pth does not fit the model: the model's "
    ):
        build(checkpoints / "squeezenet1_1.pth")
    with pytest.raises(ConfigError, match=rf"model.weights: {tmp_path}/none.pth does not exist"):
        build(tmp_path / "none.pth")
    whole = (checkpoints / "mobilenet_v3_small.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(whole[: len(whole) // 3])
    with pytest.raises(
        ConfigError, match=rf"model.weights: cannot read {tmp_path}/cut.pth as a torch state dict"
    ):
        build(tmp_path / "cut.pth")


def test_weights_with_a_misshapen_tensor_name_it_and_both_shapes(make_cfg, tmp_path):
    wide = create_model(make_cfg("model.hidden=[32]").model, SIGNAL, num_classes=10)
    torch.save({"model": wide.state_dict()}, tmp_path / "best.pt")  # a sweeplab best.pt holds `model`
    cfg = make_cfg("model.hidden=[16]", f"model.weights={tmp_path / 'best.pt'}")
    with pytest.raises(
        ConfigError, match=r"best.pt does not fit the model: 1.weight is \(32, 40\) there and \(16, 40\) here"
    ):
        create_model(cfg.model, SIGNAL, num_classes=10)
    same = create_model(
        make_cfg("model.hidden=[32]", f"model.weights={tmp_path / 'best.pt'}").model, SIGNAL, 10
    )
    assert all(torch.equal(v, same.state_dict()[k]) for k, v in wide.state_dict().items())
