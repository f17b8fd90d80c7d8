"""PyTorch import, judged against torch's own outputs."""

import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn
from fastnn import (
    Activation, BatchNorm, Dense, Dropout, Maxout, PReLU, Sequential, from_torch,
)

torch = pytest.importorskip("torch")
nn = torch.nn

#: float32 1e-6 (the issue's bar) and float64 1e-12, relative, with an absolute
#: floor of the same size for entries near zero (the outputs are of order one).
TOL = {torch.float32: 1e-6, torch.float64: 1e-12}


def every_module(dtype=torch.float32, seed=0, extras=True):
    """Every module from_torch reads; ``extras`` adds those a state_dict cannot
    carry into a fastnn architecture (Identity, Flatten, a Linear without bias:
    they shift or drop tensor names)."""
    torch.manual_seed(seed)
    modules = [
        nn.Linear(6, 10), nn.ReLU(), nn.BatchNorm1d(10), nn.Tanh(),
        nn.Linear(10, 9), nn.LeakyReLU(0.2), nn.Linear(9, 9), nn.ELU(0.7),
        nn.Linear(9, 8), nn.GELU(), nn.Linear(8, 8), nn.GELU(approximate="tanh"),
        nn.Linear(8, 8), nn.SELU(), nn.Linear(8, 8), nn.SiLU(), nn.Dropout(0.2),
        nn.Linear(8, 7), nn.Sigmoid(), nn.PReLU(), nn.Linear(7, 7), nn.PReLU(7),
        nn.Linear(7, 6, bias=not extras), nn.Softplus(),
        *([nn.Identity(), nn.Flatten()] if extras else []),
        nn.Linear(6, 4), nn.Softmax(dim=1)]
    module = nn.Sequential(*modules).to(dtype)
    with torch.no_grad():
        bn = module[2]
        bn.running_mean.copy_(torch.randn(10) * 0.3)
        bn.running_var.copy_(torch.rand(10) + 0.5)
        bn.weight.copy_(torch.rand(10) + 0.5)
        bn.bias.copy_(torch.randn(10) * 0.2)
        module[19].weight.fill_(0.1)
    return module.eval()


def assert_matches(model, module, rng, n_in, dtype=torch.float32):
    X = 2 * rng.standard_normal((300, n_in))
    with torch.no_grad():
        expected = module(torch.from_numpy(X).to(dtype)).numpy()
    got = model.predict(X)
    assert got.dtype == expected.dtype
    tol = TOL[dtype]
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64],
                         ids=["float32", "float64"])
def test_sequential_of_every_module(dtype, rng):
    module = every_module(dtype)
    model = from_torch(module)
    assert model.dtype == np.dtype(str(dtype).split(".")[1])
    assert [la.describe() for la in model.layers] == [
        "Dense(10, relu)", "BatchNorm", "Activation(tanh)", "Dense(9, leaky_relu)",
        "Dense(9, elu)", "Dense(8, gelu)", "Dense(8, gelu_tanh)", "Dense(8, selu)",
        "Dense(8, silu)", "Dropout", "Dense(7, sigmoid)", "PReLU", "Dense(7)",
        "PReLU", "Dense(6, softplus)", "Dense(4)", "Activation(softmax)"]
    assert_matches(model, module, rng, 6, dtype)


def test_state_dict_into_an_unbuilt_architecture(rng, tmp_path):
    module = every_module(extras=False)
    model = from_torch(module)  # only for its architecture
    arch = Sequential([type(la).from_config(la.get_config()) for la in model.layers])
    assert from_torch(module.state_dict(), arch) is arch
    assert arch.input_dim == 6
    assert_matches(arch, module, rng, 6)
    assert arch.layers[1].num_batches_tracked == int(module[2].num_batches_tracked)


def test_safetensors_and_pt_files(rng, tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(1)
    module = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Dropout(), nn.Linear(8, 3),
                           nn.PReLU(3)).eval()
    save_file(module.state_dict(), str(tmp_path / "w.safetensors"))
    torch.save(module.state_dict(), tmp_path / "w.pt")

    def arch():
        return Sequential([Dense(8, "tanh"), Dropout(), Dense(3), PReLU("all")])

    for name in ("w.safetensors", "w.pt"):
        assert_matches(from_torch(tmp_path / name, arch()), module, rng, 5)
    # a built architecture too, and fastnn's own file names
    built = Sequential([Dense(8, "tanh"), Dropout(), Dense(3), PReLU("all")],
                       input_dim=5)
    from_torch(str(tmp_path / "w.pt"), built)
    built.save(tmp_path / "own.safetensors")
    assert_matches(from_torch(tmp_path / "own.safetensors", arch()), module, rng, 5)


def test_module_with_architecture_loads_its_state_dict(rng):
    torch.manual_seed(2)
    module = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2)).eval()
    arch = Sequential([Dense(6, "relu"), Dense(2)])
    assert_matches(from_torch(module, arch), module, rng, 4)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickled_code_in_a_pt_file_never_runs(tmp_path):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    import pickle

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"0.weight": Evil()}))
    torch.save(nn.Linear(2, 2), tmp_path / "module.pt")
    arch = Sequential([Dense(2)])
    for name in ("evil.pt", "module.pt"):
        with pytest.raises(ValueError, match="weights_only=True"):
            from_torch(tmp_path / name, arch)
    assert not marker.exists()
    assert not arch.built


def test_refusals_leave_the_architecture_unchanged(rng, tmp_path):
    torch.manual_seed(3)
    module = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    state = module.state_dict()
    built = Sequential([Dense(6, "relu"), Dense(2)], input_dim=4, seed=0)
    before = built.get_weights()
    unbuilt = Sequential([Dense(6, "relu"), Dense(2)])
    bad = [
        ({k: v for k, v in state.items() if k != "2.bias"}, r"missing \['2.bias'\]"),
        ({**state, "5.weight": torch.zeros(1)}, r"unexpected \['5.weight'\]"),
        ({**state, "2.weight": torch.zeros(2, 7)}, r"'2.weight' has shape"),
        ({**state, "2.bias": torch.tensor([1.0, float("nan")])}, "NaN"),
    ]
    for sd, match in bad:
        for arch in (built, unbuilt):
            with pytest.raises(ValueError, match=match):
                from_torch(sd, arch)
    for got, want in zip(built.get_weights(), before):
        np.testing.assert_array_equal(got, want)
    assert not unbuilt.built
    with pytest.raises(ValueError, match="architecture: a state_dict needs"):
        from_torch(state)
    with pytest.raises(ValueError, match="architecture: a state_dict file needs"):
        from_torch(tmp_path / "w.pt")
    with pytest.raises(FileNotFoundError):
        from_torch(tmp_path / "w.pt", unbuilt)
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    with pytest.raises(ValueError, match="not a safetensors file"):
        from_torch(tmp_path / "bad.safetensors", unbuilt)
    with pytest.raises(TypeError, match="architecture"):
        from_torch(state, "not a model")
    with pytest.raises(TypeError, match="source"):
        from_torch(3)
    with pytest.raises(ValueError, match="do not fix the input width"):
        from_torch(state, Sequential([PReLU(), Dense(2)]))


def test_modules_without_a_layer_are_named():
    with pytest.raises(ValueError, match=r"\[1\] Conv1d has no fastnn layer"):
        from_torch(nn.Sequential(nn.Linear(2, 2), nn.Conv1d(1, 1, 1)))
    with pytest.raises(ValueError, match=r"\[1\] Sequential has no fastnn layer"):
        from_torch(nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.ReLU())))
    with pytest.raises(ValueError, match="beta=1"):
        from_torch(nn.Sequential(nn.Linear(2, 2), nn.Softplus(beta=2)))
    with pytest.raises(ValueError, match="dim=0"):
        from_torch(nn.Sequential(nn.Linear(2, 2), nn.Softmax(dim=0)))
    with pytest.raises(TypeError, match="nn.Sequential"):
        from_torch(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="float32 or float64"):
        from_torch(nn.Sequential(nn.Linear(2, 2).half()))


def test_maxout_and_batchnorm_first_through_a_state_dict(rng):
    model = Sequential([BatchNorm(), Maxout(3, pieces=2), Activation("softmax")],
                       input_dim=4, seed=0)
    model.fit(rng.standard_normal((50, 4)), rng.integers(0, 3, 50), epochs=1,
              verbose=0)
    state = {f"{i}.{k}": torch.from_numpy(v.copy()) for i, layer in
             enumerate(model.layers) for k, v in layer.get_arrays().items()}
    arch = Sequential([BatchNorm(), Maxout(3, pieces=2), Activation("softmax")])
    from_torch(state, arch)
    X = rng.standard_normal((20, 4)).astype(np.float32)
    np.testing.assert_array_equal(arch.predict(X), model.predict(X))


def test_import_fastnn_imports_neither_torch_nor_onnx():
    code = ("import sys, fastnn; fastnn.from_onnx; fastnn.from_torch; "
            "print('torch' in sys.modules, 'onnx' in sys.modules)")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, env=env, check=True).stdout
    assert out.split() == ["False", "False"]
    assert fastnn.from_torch is from_torch
