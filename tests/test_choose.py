"""Choosing the model per archive (issue 19 item 1): the estimate is the coder's own
integer code length, the choice is the smallest real file, and the CLI says which."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import TINY8_NAME as TINY8
from conftest import TINY_NAME, synthetic_digits, synthetic_gray
from test_cli import ok, run
from vlaecodec import choose, codec
from vlaecodec.arith import ArithEncoder


def test_sample_rows_spread_over_the_archive():
    assert choose.sample_rows(5).tolist() == [0, 1, 2, 3, 4]
    rows = choose.sample_rows(1000, 200)
    assert len(rows) == 200 and rows[0] == 0 and rows[-1] == 999 and np.all(np.diff(rows) > 0)


@pytest.mark.parametrize("model", ["tiny", "tiny8"])
def test_neg_elbo_is_the_coders_integer_weight(model, request):
    """The estimate's -ELBO for a drawn z is -log2 w of the Monte Carlo bits-back code,
    integer for integer (same tables as the coder's push/pop)."""
    net = request.getfixturevalue(model).net
    x = synthetic_digits(6, seed=3) * (255 if net.levels == 256 else 1)
    mean, log_std = net.posterior(x)
    k, _ = choose.draw_posterior(net, mean, log_std, np.random.default_rng(5))
    got = choose.neg_elbo_q16(net, x, np.random.default_rng(5), (mean, log_std))
    want = -codec._log_weights(net, x, k[:, None, :], mean, log_std)[:, 0]
    assert np.array_equal(got, want)


def test_posterior_draws_follow_the_table(tiny):
    """Draws land on cells in proportion to their frequency (not all on the mode)."""
    net = tiny.net
    x = np.repeat(synthetic_digits(1, seed=1), 400, axis=0)
    mean, log_std = net.posterior(x)
    k, _ = choose.draw_posterior(net, mean, log_std, np.random.default_rng(0))
    q = next(choose_tables(net, mean[:1], log_std[:1]))[:, :]       # (D, cells) of one image
    d = int(np.argmax((q.max(1) < 0.6 * q.sum(1))))                   # a dimension with spread
    counts = np.bincount(k[:, d] + net.grid.K, minlength=net.grid.size) / len(k)
    p = q[d] / q[d].sum()
    assert np.abs(counts - p).max() < 0.08 and (counts > 0).sum() >= 2


def choose_tables(net, mean, log_std):
    for _, q in codec._posterior_tables(net, mean, log_std):
        yield q


def test_direct_estimate_is_the_real_direct_code(tiny):
    """Without the bin search, the direct estimate is the arithmetic coder's length
    (within its 2 closing bytes)."""
    net = tiny.net
    x = synthetic_digits(5, seed=4)
    encs = [ArithEncoder() for _ in x]
    codec._encode_direct(net, x, encs, rounds=0)
    real = np.array([8 * len(e.finish()) for e in encs])
    est = choose.direct_q16(net, x) / 65536
    assert np.all(np.abs(real - est) <= 16), (real, est)


def test_estimate_tracks_the_real_file(tiny):
    """The estimate of an archive is close to the file the codec writes."""
    x = synthetic_digits(60, seed=7)
    est = choose.estimate(tiny, x)
    real = 8 * len(codec.compress(list(x), tiny)) - 8 * 10    # less the ~10 header bytes
    assert abs(est.bits - real) / real < 0.05, (est.bits, real)
    assert est.images == 60 and est.measured == 60 and est.direct_images >= 1


def test_estimate_is_seeded_and_thread_count_free(tiny8):
    x = synthetic_gray(20, seed=2)
    a = choose.estimate(tiny8, x, jobs=1)
    b = choose.estimate(tiny8, x, jobs=2)
    assert a == b


def test_candidates_by_kind():
    binary = choose.candidates(2, 28)
    gray = choose.candidates(256, 28)
    assert TINY_NAME in binary and TINY8 in binary          # 8-bit models code 0/255 images too
    assert TINY8 in gray and TINY_NAME not in gray
    assert TINY8 not in choose.candidates(2, 28, binarize=True)
    assert choose.candidates(2, 32) == []


def test_the_choice_is_the_smallest_real_file():
    """Binary digits among the binary and 8-bit models: the chosen model writes the
    smallest real file of them all, and an unlikely model is not chosen."""
    x = synthetic_digits(40, seed=9)
    names = [TINY_NAME, TINY8, "vlae-mnist-v2"]
    c = choose.choose(2, 28, lambda lv, name: x * (255 if lv == 256 else 1), len(x), names=names)
    from vlaecodec.zoo import load_model
    real = {n: len(codec.compress(list(x * (255 if load_model(n).config.pixel_levels == 256 else 1)),
                                  load_model(n))) for n in names}
    assert c.model.name == min(real, key=real.get), (real, [(e.name, e.bits / 8) for e in c.estimates])
    assert [e.name for e in c.estimates][0] == c.model.name and len(c.estimates) == 3
    assert c.estimates[0].bits <= c.estimates[1].bits <= c.estimates[2].bits


def test_a_model_that_fails_to_load_is_skipped():
    x = synthetic_digits(4, seed=1)
    c = choose.choose(2, 28, lambda lv, name: x, len(x), names=["no-such-model", TINY_NAME])
    assert c.model.name == TINY_NAME and c.skipped and c.skipped[0][0] == "no-such-model"
    from vlaecodec.zoo import ModelError
    with pytest.raises(ModelError):
        choose.choose(2, 28, lambda lv, name: x, len(x), names=["no-such-model"])


def test_named_models_cost_header_bytes():
    from vlaecodec.zoo import DEFAULT_MODELS
    assert choose.header_name_bits(DEFAULT_MODELS[2]) == 0
    assert choose.header_name_bits("vlae-fashion-mnist-v1") == 8 * 22


# ------------------------------------------------------------------ the command line

def _gray_folder(tmp_path, n=4):
    d = tmp_path / "gray"
    d.mkdir()
    for i, a in enumerate(synthetic_gray(n, seed=3)):
        Image.fromarray(a, "L").save(d / f"{i}.png")
    return d


def test_cli_names_the_chosen_model_and_decodes(tmp_path, monkeypatch):
    monkeypatch.setattr(choose, "candidates", lambda *a, **k: [TINY8, "vlae-mnist8-v1"])
    d = _gray_folder(tmp_path)
    out = ok(run("compress", d, "-o", tmp_path / "g.vlae")).stderr
    import vlaecodec
    h = vlaecodec.inspect((tmp_path / "g.vlae").read_bytes())
    from vlaecodec.zoo import load_model
    name = next(n for n in (TINY8, "vlae-mnist8-v1") if load_model(n).sha256.startswith(h.model_hash))
    assert f"bytes with {name}, the smallest estimate of 2 models (" in out
    ok(run("decompress", tmp_path / "g.vlae", "-o", tmp_path / "out", "-q"))
    for i, a in enumerate(synthetic_gray(4, seed=3)):
        with Image.open(tmp_path / "out" / f"{i}.png") as im:
            assert np.array_equal(np.asarray(im), a)


def test_cli_model_option_still_forces_one(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("no estimate with --model")
    monkeypatch.setattr(choose, "choose", boom)
    d = _gray_folder(tmp_path)
    out = ok(run("compress", d, "-o", tmp_path / "g.vlae", "--model", TINY8)).stderr
    assert f"bytes with {TINY8} (" in out


def test_cli_lossy_keeps_the_default_binary_model(tmp_path, monkeypatch):
    from vlaecodec import zoo
    monkeypatch.setitem(zoo.DEFAULT_MODELS, 2, TINY_NAME)
    monkeypatch.setattr(choose, "choose", lambda *a, **k: pytest.fail("lossy files do not choose"))
    d = tmp_path / "b"
    d.mkdir()
    for i, a in enumerate(synthetic_digits(3, seed=5)):
        Image.fromarray(a.astype(bool)).save(d / f"{i}.png")
    out = ok(run("compress", d, "-o", tmp_path / "l.vlae", "--lossy")).stderr
    assert f"with {TINY_NAME} (" in out


# ------------------------------------------------------------------ the data set

def test_binarized_fashion_mnist_splits(tmp_path):
    """Static binarization of Fashion-MNIST's test and held-out splits (the documented
    rule and seed), dynamic for training; read from a folder of IDX files."""
    import struct

    from vlaecodec import data

    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (10005, 28, 28), dtype=np.uint8)
    test = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    for stem, a in (("train-images-idx3-ubyte", train), ("t10k-images-idx3-ubyte", test)):
        (tmp_path / stem).write_bytes(b"\0\0\x08\x03" + struct.pack(">III", *a.shape) + a.tobytes())
    got = data.load_binarized_fashion_mnist("test", tmp_path)
    u = np.random.default_rng([data.BINARIZE_SEED, 2]).random(test.shape)
    assert np.array_equal(got, (u < test / 255.0).astype(np.uint8))
    x8, valid, dynamic = data.training_split("binarized-fashion-mnist", str(tmp_path))
    assert dynamic and np.array_equal(x8, train[:5]) and valid.shape == (10000, 28, 28)
    assert np.array_equal(valid, data.binarize_static(train[5:], 1)) and set(np.unique(valid)) == {0, 1}
    assert "binarized-fashion-mnist" in data.DATASETS and "binarized-fashion-mnist" in data.BINARY_DATASETS


def test_screening_measures_only_the_close_models_on_the_whole_sample():
    """Models far behind on the screening images keep that estimate; the best ones are
    measured on the whole sample, and the choice is the one without screening."""
    x = synthetic_digits(90, seed=12)
    names = [TINY_NAME, TINY8, "vlae-mnist-v2", "vlae-mnist-v1"]
    c = choose.choose(2, 28, lambda lv, name: x * (255 if lv == 256 else 1), len(x), names=names, screen=30)
    full = choose.choose(2, 28, lambda lv, name: x * (255 if lv == 256 else 1), len(x), names=names, screen=0)
    measured = {e.name: e.measured for e in c.estimates}
    assert measured == {TINY_NAME: 30, TINY8: 30, "vlae-mnist-v2": 90, "vlae-mnist-v1": 90}
    assert c.model.name == full.model.name
    assert {e.name: e.bits for e in c.estimates if e.measured == 90} == \
        {e.name: e.bits for e in full.estimates if e.name.startswith("vlae-mnist")}
