"""The PyTorch front end: a live nn.Module in, the same float network out (no layer shapes written by hand)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from hwgen.compiler import FloatNetwork, from_torch, to_onnx   # noqa: E402
from hwgen.errors import UnsupportedModelError                 # noqa: E402

nn = torch.nn


def small_cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, stride=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 5, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                         nn.Linear(20, 7), nn.ReLU(), nn.Dropout(0.5), nn.Linear(7, 3))


def check(module, shape, **kw):
    x = torch.randn((4,) + shape, generator=torch.Generator().manual_seed(1))
    net = from_torch(module, x[:1], **kw)
    assert isinstance(net, FloatNetwork) and net.input_layout == shape
    with torch.no_grad():
        expected = module.eval()(x).numpy()
    np.testing.assert_allclose(net.forward(x.numpy()), expected, rtol=1e-5, atol=1e-5)
    return net


def test_sequential_cnn():
    module = small_cnn().train()
    net = check(module, (2, 16, 16))
    assert [(layer.kind, layer.relu, layer.pool) for layer in net.layers] == [
        ("conv2d", True, "max"), ("conv2d", True, "avg"), ("linear", True, "none"), ("linear", False, "none")]
    assert net.layers[0].stride == (2, 2) and net.layers[2].flatten_from == (5, 2, 2)


def test_training_mode_is_restored():
    module = small_cnn().train()
    to_onnx(module, torch.zeros(1, 2, 16, 16))
    assert module.training


def test_custom_module_with_functional_calls():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 3, 5, bias=False)
            self.fc = nn.Linear(3 * 2 * 2, 4)

        def forward(self, x):
            x = torch.nn.functional.max_pool2d(torch.relu(self.conv(x)), 2)
            return self.fc(torch.flatten(x, 1))

    torch.manual_seed(2)
    net = check(Net(), (1, 8, 8))
    assert net.name == "net" and not net.layers[0].bias.any()


def test_mlp():
    torch.manual_seed(3)
    net = check(nn.Sequential(nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, 2)), (10,))
    assert net.input_layout == (10,) and net.output_shape == (2,)


def test_unsupported_module_names_the_node():
    torch.manual_seed(4)
    module = nn.Sequential(nn.Linear(4, 3), nn.Sigmoid())
    with pytest.raises(UnsupportedModelError, match=r"\(Sigmoid\): op Sigmoid is not supported") as info:
        from_torch(module, torch.zeros(1, 4))
    assert info.value.op_type == "Sigmoid" and info.value.node


def test_grouped_conv_rejected():
    module = nn.Sequential(nn.Conv2d(4, 4, 3, groups=2))
    with pytest.raises(UnsupportedModelError, match=r"\(Conv\): group=2"):
        from_torch(module, torch.zeros(1, 4, 6, 6))


def test_argument_checks():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        to_onnx(lambda x: x, torch.zeros(1, 2))
    with pytest.raises(ValueError, match="leading batch axis of 1"):
        to_onnx(nn.Linear(2, 2), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="exporter must be"):
        to_onnx(nn.Linear(2, 2), torch.zeros(1, 2), exporter="fx")


@pytest.mark.slow
def test_dynamo_exporter_gives_the_same_network():
    pytest.importorskip("onnxscript")
    module = small_cnn()
    net = check(module, (2, 16, 16), exporter="dynamo")
    ref = from_torch(module, torch.zeros(1, 2, 16, 16))
    for a, b in zip(net.layers, ref.layers):
        np.testing.assert_array_equal(a.weight, b.weight)
        assert (a.relu, a.pool, a.flatten_from, a.stride, a.pad) == (b.relu, b.pool, b.flatten_from, b.stride, b.pad)
