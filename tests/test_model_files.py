"""seqkern.nn model files: atomic saves, one name resolution for save and load, and loading that
checks a file against itself before allocating (shapes from the .npy headers, sizes the zip
members can hold) and names the file in every error."""

from __future__ import annotations

import errno
import json
import os
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest

from seqkern import nn


def _model():
    rng = np.random.default_rng(0)
    return nn.Sequential([nn.Embedding(20, 8, seed=rng), nn.LSTM(8, 4, return_sequences=True, seed=rng),
                          nn.AttentionPool(4, 3, seed=rng), nn.Dense(4, 2, activation="softmax", seed=rng)]
                         ).compile("adam", "sparse_categorical_crossentropy")


def _write(path, config, arrays, compress=False):
    """A model file as save writes it, with any config and members."""
    members = dict(arrays)
    members["config.json"] = np.array(json.dumps(config))
    (np.savez_compressed if compress else np.savez)(path, **members)
    return path


def _config(layers):
    return {"layers": layers, "loss": None, "metrics": [], "extra": {}}


def _embedding(n, dim):
    return {"class": "Embedding", "num_embeddings": n, "dim": dim, "padding_idx": 0, "scale": 0.05,
            "word_dropout": 0.0, "unk_idx": 1, "dtype": "float32"}


def _peak_bytes(fn):
    """The most memory (bytes, as tracemalloc sees Python and NumPy allocations) ``fn`` holds at once."""
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    model = _model()
    model.save(path)
    good = path.read_bytes()

    def disk_full(file, *args, **kwargs):
        """numpy.savez on a full disk: the first bytes are written, then the write fails."""
        if isinstance(file, (str, os.PathLike)):
            with open(file, "wb") as fh:
                fh.write(b"PK\x03\x04 half a model")
        else:
            file.write(b"PK\x03\x04 half a model")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(OSError, match="No space left"):
        model.save(path)
    with pytest.raises(OSError):
        model.save(tmp_path / "new.npz")
    monkeypatch.undo()
    assert path.read_bytes() == good, "a failed save must leave the previous file as it was"
    assert sorted(os.listdir(tmp_path)) == ["m.npz"], "no half-written or temporary file is left behind"
    np.testing.assert_array_equal(nn.load_model(path).params()["0.weight"], model.params()["0.weight"])


def test_save_and_load_resolve_a_name_alike(tmp_path):
    model = _model()
    written = model.save(tmp_path / "m")
    assert written == str(tmp_path / "m.npz") and os.listdir(tmp_path) == ["m.npz"]
    for name in (tmp_path / "m", str(tmp_path / "m"), tmp_path / "m.npz"):
        np.testing.assert_array_equal(nn.load_model(name).params()["3.weight"], model.params()["3.weight"])
    with pytest.raises(FileNotFoundError, match="absent.npz"):
        nn.load_model(tmp_path / "absent")


def test_config_declaring_a_huge_embedding_allocates_nothing(tmp_path):
    # 2 million x 16 float32 is 128 MiB (and its float64 initial values 256 MiB); the file holds 64 bytes of it.
    path = _write(tmp_path / "m.npz", _config([_embedding(2_000_000, 16)]),
                  {"0.weight": np.zeros((1, 16), np.float32)}, compress=True)
    assert path.stat().st_size < 1024

    def load():
        with pytest.raises(ValueError, match=r"0\.weight has shape \(1, 16\) in the file, but the config declares "
                                             r"\(2000000, 16\)") as e:
            nn.load_model(path)
        assert str(path) in str(e.value)

    assert _peak_bytes(load) < 4 * 2**20


def test_compressed_member_is_not_inflated_before_its_shape_is_checked(tmp_path):
    # A 256 MiB array of zeros deflates to about 250 KiB; the config wants a (2, 8) weight there.
    path = tmp_path / "m.npz"
    dense = {"class": "Dense", "in_features": 8, "units": 2, "activation": None, "use_bias": True, "dtype": "float32"}
    n = 64 * 2**20
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json.npy", _npy_bytes(np.array(json.dumps(_config([dense])))))
        zf.writestr("0.bias.npy", _npy_bytes(np.zeros(2, np.float32)))
        with zf.open("0.weight.npy", "w", force_zip64=True) as fh:
            np.lib.format.write_array_header_1_0(fh, {"descr": "<f4", "fortran_order": False, "shape": (n,)})
            chunk = bytes(2**20)
            for _ in range(n * 4 // len(chunk)):
                fh.write(chunk)
    assert path.stat().st_size < 2**20

    def load():
        with pytest.raises(ValueError, match=r"0\.weight has shape \(67108864,\) in the file, but the config declares"):
            nn.load_model(path)

    assert _peak_bytes(load) < 4 * 2**20


def _npy_bytes(a):
    import io

    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, allow_pickle=False)
    return buf.getvalue()


@pytest.mark.parametrize("key,bad", [("0.weight", np.zeros((1, 8), np.float32)),  # broadcast to (20, 8) before
                                     ("3.bias", np.zeros((1,), np.float32)),
                                     ("1.w_hh_l0", np.zeros((4, 16), np.float32))])
def test_parameter_of_the_wrong_shape_is_refused(tmp_path, key, bad):
    model = _model()
    arrays = dict(model.params())
    arrays[key] = bad
    cfg = model.get_config()
    cfg["extra"] = {}
    path = _write(tmp_path / "m.npz", cfg, arrays)
    with pytest.raises(ValueError, match=rf"{key} has shape {tuple(bad.shape)}".replace("(", r"\(").replace(")", r"\)")):
        nn.load_model(path)


def _saved(tmp_path):
    path = tmp_path / "good.npz"
    _model().save(path)
    return path


def _with_config(tmp_path, edit):
    """The good model's file with its config changed by ``edit(cfg)``."""
    model = _model()
    cfg = model.get_config()
    cfg["extra"] = {}
    edit(cfg)
    return _write(tmp_path / "bad.npz", cfg, model.params())


def _members(tmp_path, **replace):
    """The good model's file with members replaced (bytes) or added."""
    src = _saved(tmp_path)
    path = tmp_path / "bad.npz"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(path, "w") as zout:
        for name in zin.namelist():
            zout.writestr(name, replace.pop(name, zin.read(name)))
        for name, data in replace.items():
            zout.writestr(name, data)
    return path


def _lying_size(tmp_path):
    """A deflated member whose zip directory entry claims 4 GiB."""
    path = _write(tmp_path / "bad.npz", _config([]), {}, compress=True)
    data = bytearray(path.read_bytes())
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, 2**31)
    path.write_bytes(bytes(data))
    return path


BAD_FILES = {
    "not a zip": (lambda p: _text_file(p / "bad.npz"), "not a model file"),
    "truncated": (lambda p: _truncated(p), "bad.npz"),
    "unknown config key": (lambda p: _with_config(p, lambda c: c["layers"][0].update(colour="red")),
                           "does not describe a model"),
    "unknown layer class": (lambda p: _with_config(p, lambda c: c["layers"][1].update({"class": "Conv2D"})),
                            "unknown layer class 'Conv2D'"),
    "fractional size": (lambda p: _with_config(p, lambda c: c["layers"][0].update(dim=8.5)),
                        "dim must be an integer"),
    "negative size": (lambda p: _with_config(p, lambda c: c["layers"][3].update(units=-2)), "units must be >= 0"),
    "layers not a list": (lambda p: _with_config(p, lambda c: c.update(layers={"a": 1})), "list of layer objects"),
    "unknown loss": (lambda p: _with_config(p, lambda c: c.update(loss="hinge")), "unknown loss"),
    "no config": (lambda p: _members(p, **{"config.json.npy": _npy_bytes(np.zeros(1))}), "config.json must be"),
    "config not JSON": (lambda p: _members(p, **{"config.json.npy": _npy_bytes(np.array("{nope"))}), "not valid JSON"),
    "deep JSON": (lambda p: _members(p, **{"config.json.npy": _npy_bytes(np.array("[" * 100_000))}),
                  "not valid JSON"),
    "missing parameter": (lambda p: _missing(p, "2.w_s.npy"), "parameter 2.w_s (3,) is missing"),
    "extra member": (lambda p: _members(p, **{"9.weight.npy": _npy_bytes(np.zeros(2, np.float32))}),
                     "parameters of no layer"),
    "not npy": (lambda p: _members(p, **{"notes.txt": b"hi"}), "'notes.txt' is not a .npy array"),
    "bad npy header": (lambda p: _members(p, **{"0.weight.npy": b"\x93NUMPY\x01\x00garbage"}),
                       "'0.weight.npy' is not a valid .npy array"),
    "object array": (lambda p: _members(p, **{"0.weight.npy": _pickled()}), "holds Python objects"),
    "integer parameter": (lambda p: _members(p, **{"3.bias.npy": _npy_bytes(np.zeros(2, np.int64))}),
                          "3.bias must be floating point"),
    "header larger than data": (lambda p: _members(p, **{"3.bias.npy": _npy_bytes(np.zeros(2, np.float32))[:-4]}),
                                "holds 4"),
    "size no compression can reach": (_lying_size, "more than its"),
}


def _text_file(path):
    path.write_text("hello")
    return path


def _truncated(p):
    src = _saved(p)
    path = p / "bad.npz"
    path.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    return path


def _missing(p, name):
    src = _saved(p)
    path = p / "bad.npz"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(path, "w") as zout:
        for n in zin.namelist():
            if n != name:
                zout.writestr(n, zin.read(n))
    return path


def _pickled():
    import io

    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return buf.getvalue()


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_raises_value_error_naming_it(tmp_path, case):
    make, message = BAD_FILES[case]
    path = make(tmp_path)
    with pytest.raises(ValueError) as e:
        nn.load_model(path)
    assert str(e.value).startswith(f"load_model: {path}"), str(e.value)
    assert message in str(e.value), str(e.value)


@pytest.mark.parametrize("layer", [
    nn.Embedding(7, 3), nn.Embedding(7, 3, padding_idx=None), nn.Dense(4, 2), nn.Dense(4, 2, use_bias=False),
    nn.Dropout(0.3), nn.MeanPool(), nn.AttentionPool(6), nn.AttentionPool(6, 2),
    nn.LSTM(3, 4), nn.LSTM(3, 4, num_layers=3, bidirectional=True, peephole=True),
], ids=lambda layer: type(layer).__name__)
def test_param_shapes_match_the_layers_built(layer):
    shapes = list(type(layer).param_shapes(layer.get_config()))
    assert shapes == [(k, v.shape) for k, v in layer.params().items()]
