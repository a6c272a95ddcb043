"""vlaecodec.rans: the vectorized rANS stack (round trips, bits-back, chunks, serialization).

craystack's check_codec idea throughout: a pop must give back both the symbols and the
exact earlier state (compared as the serialized words, which hold every head and word)."""
from __future__ import annotations

import doctest
import hashlib

import numpy as np
import pytest

from vlaecodec import rans
from vlaecodec.rans import HEAD_MIN, Stack, code_length


def tables(rng, n: int, prec: int, alphabet: int = 7) -> np.ndarray:
    """n random categorical CDF rows (n, A+1) out of 2**prec, every frequency >= 1;
    integer arithmetic only, so the same rows on every machine (the golden test needs it)."""
    a = min(alphabet, 1 << prec)
    raw = rng.integers(1, 1 << 16, size=(n, a)) >> rng.integers(0, 16, size=(n, a))
    raw += 1
    f = 1 + raw * ((1 << prec) - a) // raw.sum(1, keepdims=True)     # < 2**49: exact
    f[:, 0] += (1 << prec) - f.sum(1)
    return np.concatenate([np.zeros((n, 1), np.int64), np.cumsum(f, 1)], 1)


def sample(rng, cdf: np.ndarray, prec: int) -> np.ndarray:
    u = rng.integers(0, 1 << prec, size=len(cdf))
    return (cdf[:, 1:] <= u[:, None]).sum(1)


def interval(cdf: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = np.arange(len(x))
    return cdf[rows, x], cdf[rows, x + 1] - cdf[rows, x]


def finder(cdf: np.ndarray):
    """find(cf, sl) for the symbols whose CDF rows are cdf (one row per symbol index)."""
    def find(cf, sl):
        c = cdf[sl]
        x = (c[:, 1:] <= cf[:, None]).sum(1)
        return (x,) + interval(c, x)
    return find


EMPTY = np.array([0], dtype=np.uint32)      # an empty stack: just the lane count, 0


@pytest.mark.parametrize("seed", range(6))
def test_round_trip_many_calls(seed):
    """Several pushes (random n, some > L, random precisions up to 32), then the pops in
    reverse order: the same symbols, and an empty stack again."""
    rng = np.random.default_rng(seed)
    lanes = int(rng.choice([1, 3, 64, 1024]))
    st = Stack(lanes)
    calls = []
    for _ in range(5):
        n = int(rng.integers(0, 3 * lanes + 5)) if lanes < 1024 else int(rng.integers(0, 2500))
        prec = int(rng.integers(1, 33))
        cdf = tables(rng, n, prec)
        x = sample(rng, cdf, prec)
        st.push(*interval(cdf, x), prec)
        calls.append((cdf, x, prec))
    st = Stack.from_words(st.to_words(), lanes)
    for cdf, x, prec in reversed(calls):
        assert np.array_equal(st.pop(len(x), prec, finder(cdf)), x)
    assert np.array_equal(st.to_words(), EMPTY)
    assert np.all(st.head == HEAD_MIN)


@pytest.mark.parametrize("filled", [False, True])
@pytest.mark.parametrize("prec", [1, 12, 24, 32])
def test_pop_then_push_restores_the_state(filled, prec):
    """Bits-back: pop symbols (from an empty stack too), push them back: the same words."""
    rng = np.random.default_rng(prec + 100 * filled)
    lanes = 37
    st = Stack(lanes)
    if filled:
        cdf0 = tables(rng, 500, 16)
        st.push(*interval(cdf0, sample(rng, cdf0, 16)), 16)
    before = st.to_words()
    n = 200                                     # > L: several chunks, some lanes 6 deep
    cdf = tables(rng, n, prec)
    x = st.pop(n, prec, finder(cdf))
    st.push(*interval(cdf, x), prec)
    assert np.array_equal(st.to_words(), before)


def test_pop_from_empty_is_deterministic_and_costs_bits():
    """A fresh stack gives cf = 0 in every lane at first; the popped symbols are the same on
    every run; pushing their information afterwards is what the file pays."""
    rng = np.random.default_rng(7)
    cdf = tables(rng, 300, 24, alphabet=50)
    a = Stack(100).pop(300, 24, finder(cdf))
    b = Stack(100).pop(300, 24, finder(cdf))
    assert np.array_equal(a, b)
    first = finder(cdf)(np.zeros(100, np.int64), slice(0, 100))[0]
    assert np.array_equal(a[:100], first)       # cf = 0 names the first chunk's symbols
    st = Stack(100)
    x = st.pop(300, 24, finder(cdf))
    assert st.bits() > 32                       # the heads moved: not empty any more
    st2 = Stack(100)
    st2.push(*interval(cdf, x), 24)
    info = code_length(interval(cdf, x)[1], 24)
    assert st2.content_bits() == pytest.approx(info, rel=1e-3, abs=1.0)


def test_chunks_are_calls():
    """n > L works in chunks: push(all) equals push(tail part) then push(first L), and
    pop(n) equals pop(L) then pop(n - L) (chunk boundaries at multiples of L)."""
    rng = np.random.default_rng(3)
    lanes, n, prec = 16, 16 * 5 + 7, 20
    cdf = tables(rng, n, prec)
    x = sample(rng, cdf, prec)
    s, f = interval(cdf, x)
    one = Stack(lanes)
    one.push(s, f, prec)
    two = Stack(lanes)
    two.push(s[lanes:], f[lanes:], prec)
    two.push(s[:lanes], f[:lanes], prec)
    assert np.array_equal(one.to_words(), two.to_words())
    assert np.array_equal(one.pop(lanes, prec, finder(cdf[:lanes])), x[:lanes])
    assert np.array_equal(one.pop(n - lanes, prec, finder(cdf[lanes:])), x[lanes:])
    assert np.array_equal(one.to_words(), EMPTY)


def test_serialization_is_compact():
    """Unused lanes cost nothing: 1024 lanes with 3 symbols stored in 1 + 2*3 words (the
    heads absorb 3 small symbols); bits() is the exact size; from_words inverts."""
    st = Stack(1024)
    assert np.array_equal(st.to_words(), EMPTY) and st.bits() == 32
    st.push(np.array([1, 2, 3]), np.array([1, 1, 1]), 8)
    w = st.to_words()
    assert len(w) == 1 + 2 * 3 and st.bits() == 32 * len(w)
    rng = np.random.default_rng(11)
    cdf = tables(rng, 5000, 24, alphabet=256)
    x = sample(rng, cdf, 24)
    st = Stack(300)
    st.push(*interval(cdf, x), 24)
    w = st.to_words()
    assert w.dtype == np.uint32 and st.bits() == 32 * len(w)
    back = Stack.from_words(w, 300)
    assert np.array_equal(back.to_words(), w)
    assert np.array_equal(Stack.from_words(w.astype(np.int64), 300).to_words(), w)
    # Size against information: the heads' overhead is 32..64 bits per used lane (+ 32).
    info = code_length(interval(cdf, x)[1], 24)
    assert info < st.bits() <= info + 64 * 300 + 32 + 1
    assert st.content_bits() == pytest.approx(info, rel=1e-4)
    assert np.array_equal(back.pop(5000, 24, finder(cdf)), x)


def test_from_words_rejects_what_no_stack_writes():
    st = Stack(4)
    st.push(np.arange(10), np.full(10, 3), 5)
    w = st.to_words()
    for bad in (np.array([], np.uint32), np.array([5], np.uint32),        # no words / m > lanes
                np.concatenate([w[:-1], [9]]).astype(np.uint32),          # m past the words
                np.array([0, 7, 0, 1], np.uint32),                        # a head below 2**32
                np.array([0, 1, 1], np.uint32),                           # last lane empty
                np.concatenate([[0], w]).astype(np.uint32),               # tail starts with 0
                np.array([-1, 5, 1], np.int64), np.array([2 ** 32, 5, 1], np.int64),
                np.array([1.0, 2.0])):
        with pytest.raises(ValueError):
            Stack.from_words(bad, 4)


def test_bad_symbols_are_refused():
    st = Stack(4)
    with pytest.raises(ValueError):
        st.push(np.array([0]), np.array([0]), 8)           # freq 0
    with pytest.raises(ValueError):
        st.push(np.array([200]), np.array([57]), 8)        # start + freq > 2**8
    with pytest.raises(ValueError):
        st.push(np.array([-1]), np.array([2]), 8)
    with pytest.raises(ValueError):
        st.push(np.array([0]), np.array([1]), 33)
    with pytest.raises(ValueError):
        st.push(np.array([0]), np.array([1]), 0)
    with pytest.raises(ValueError):
        st.push(np.array([0, 1]), np.array([1]), 8)
    with pytest.raises(TypeError):
        st.push(np.array([0.0]), np.array([1.0]), 8)
    with pytest.raises(ValueError):
        Stack(0)
    st.push(np.array([5]), np.array([3]), 8)
    before = st.to_words()
    # find() that names an interval not holding cf: an error, not a silent wrong decode
    with pytest.raises(ValueError):
        st.pop(1, 8, lambda cf, sl: (np.zeros(1), cf + 1, np.ones(1, np.int64)))
    assert np.array_equal(st.to_words(), before)
    assert st.pop(0, 8, None).shape == (0,)


def test_full_interval_and_precision_32():
    """freq = 2**prec (a certain symbol) costs nothing; prec = 32 round-trips."""
    st = Stack(2)
    st.push(np.zeros(50, np.int64), np.full(50, 1 << 32), 32)
    assert np.array_equal(st.to_words(), EMPTY)
    s = np.array([0, 1, 2 ** 31, 2 ** 32 - 1, 12345])
    f = np.array([1, 2 ** 31 - 1, 2 ** 31, 1, 3])
    st.push(s, f, 32)
    out = st.pop(5, 32, lambda cf, sl: (np.arange(sl.start, sl.stop), s[sl], f[sl]))
    assert np.array_equal(out, np.arange(5)) and np.array_equal(st.to_words(), EMPTY)


def test_golden_words():
    """Pinned output of the integer coder (constriction pins its words too): a change here
    changes every file. Regenerate only with a format version bump."""
    rng = np.random.default_rng(2024)
    cdf = tables(rng, 1000, 24, alphabet=256)
    x = sample(rng, cdf, 24)
    st = Stack(64)
    st.pop(100, 24, finder(cdf[:100]))                   # bits-back from nothing first
    st.push(*interval(cdf, x), 24)
    w = st.to_words()
    assert hashlib.sha256(w.astype("<u4").tobytes()).hexdigest() == GOLDEN
    assert len(w) == GOLDEN_LEN


GOLDEN = "9e8854996330bd3db7fbfeef4dd6a7b9038daf8469c4de03211bd68d2a2ef7d5"
GOLDEN_LEN = 310


def reference_push(heads: list, tail: list, start, freq, prec: int) -> None:
    """The module docstring's algebra with Python integers, one symbol at a time."""
    L, n = len(heads), len(start)
    for a in reversed(range(0, n, L)):
        block = []
        for j, i in enumerate(range(a, min(a + L, n))):
            h, c, f = heads[j], int(start[i]), int(freq[i])
            if h >= f << (64 - prec):
                block.append(h % 2 ** 32)
                h >>= 32
            heads[j] = (h // f << prec) + h % f + c
        if not tail:                        # zeros on an empty tail are the endless run
            while block and block[0] == 0:
                block.pop(0)
        tail.extend(block)


def test_matches_a_python_integer_reference():
    """Independent restatement of push (Python ints, scalar loop): the same words."""
    rng = np.random.default_rng(5)
    for lanes, prec in ((1, 32), (5, 24), (8, 3), (33, 17)):
        st, heads, tail = Stack(lanes), [HEAD_MIN] * lanes, []
        for _ in range(3):
            n = int(rng.integers(1, 4 * lanes + 3))
            cdf = tables(rng, n, prec)
            s, f = interval(cdf, sample(rng, cdf, prec))
            st.push(s, f, prec)
            reference_push(heads, tail, s, f, prec)
        m = max([j + 1 for j, h in enumerate(heads) if h != HEAD_MIN], default=0)
        ref = tail + [v for h in heads[:m] for v in (h % 2 ** 32, h >> 32)] + [m]
        assert st.to_words().tolist() == ref


def test_docstring_examples():
    assert doctest.testmod(rans).failed == 0


@pytest.mark.parametrize("seed", range(4))
def test_rotating_stack_round_trip(seed):
    """rotate=True: calls of any size, serialized midway (the lane position travels in the
    count word), popped back in reverse: the same symbols and an empty stack."""
    rng = np.random.default_rng(50 + seed)
    lanes = int(rng.choice([1, 5, 64]))
    st = Stack(lanes, rotate=True)
    calls = []
    for _ in range(7):
        n = int(rng.integers(0, 3 * lanes + 5))
        prec = int(rng.integers(1, 33))
        cdf = tables(rng, n, prec)
        x = sample(rng, cdf, prec)
        st.push(*interval(cdf, x), prec)
        calls.append((cdf, x, prec))
    st = Stack.from_words(st.to_words(), lanes, rotate=True)
    for cdf, x, prec in reversed(calls):
        assert np.array_equal(st.pop(len(x), prec, finder(cdf)), x)
    assert np.array_equal(st.to_words(), EMPTY)


def test_rotating_stack_spreads_short_calls_over_all_lanes():
    """Many one-symbol calls fill every lane of a rotating stack; a plain stack puts them
    all in lane 0. Pop-then-push (bits-back) restores the words exactly."""
    rng = np.random.default_rng(9)
    cdf = tables(rng, 1, 16)
    plain, rot = Stack(8), Stack(8, rotate=True)
    for _ in range(24):
        x = sample(rng, cdf, 16)
        for st in (plain, rot):
            st.push(*interval(cdf, x), 16)
    assert np.count_nonzero(plain.head != HEAD_MIN) == 1
    assert np.count_nonzero(rot.head != HEAD_MIN) == 8
    before = rot.to_words()
    cdf2 = tables(rng, 13, 20)
    y = rot.pop(13, 20, finder(cdf2))
    rot.push(*interval(cdf2, y), 20)
    assert np.array_equal(rot.to_words(), before)


def test_rotating_stack_rejects_a_bad_lane_position():
    st = Stack(4, rotate=True)
    st.push(np.array([0, 1, 2]), np.array([1, 1, 1]), 2)
    w = st.to_words()
    w[-1] = (w[-1] & 0xFFFF) | (4 << 16)             # position 4 of 4 lanes
    with pytest.raises(ValueError):
        Stack.from_words(w, 4, rotate=True)
