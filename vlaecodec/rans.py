"""Vectorized rANS on one shared stack: L interleaved lanes, exact integer arithmetic.

A photo decoder codes a wavefront of a few hundred sub-pixels at once. One coder per
symbol would be a Python loop; one coder for all of them would serialise the work. So the
stack has L *lanes* (heads) that code side by side, and one shared *tail* of 32-bit words
that all lanes spill into and refill from (the layout of craystack, Townsend et al. 2019,
"Practical lossless compression with latent variables using bits back coding", whose
``rans.py`` this follows; the coder is Duda's range ANS, "Asymmetric numeral systems:
entropy coding combining speed of Huffman coding with compression rate of arithmetic
coding", 2013). Everything is uint64/int64 numpy arithmetic: no float decides a bit.

The algebra (one lane, head ``h``; a symbol is an interval [c, c + f) of 2**p, p <= 32)
---------------------------------------------------------------------------------------
Invariant: ``2**32 <= h < 2**64``; ``h == 2**32`` is an empty lane.

* push(c, f): if ``h >= f * 2**(64 - p)`` emit the word ``h mod 2**32`` to the tail and
  set ``h = h >> 32`` (then ``h < f * 2**(64-p)``, so one word is always enough);
  then ``h = (h // f) * 2**p + (h mod f) + c``, which is back in [2**32, 2**64).
* pop: ``cf = h mod 2**p`` names the symbol (the one with ``c <= cf < c + f``); then
  ``h = f * (h >> p) + cf - c`` undoes the push exactly, and if ``h < 2**32`` one word
  comes back from the tail: ``h = h * 2**32 + word``.

Each push grows ``log2(h) + 32 * (tail words)`` by ``p - log2(f)`` bits (up to the
tiny loss of integer division): the code length of the symbol.

Lanes and order
---------------
Rotating stacks (``rotate=True``, what the photo coder uses) assign symbol i of a call to
lane ``(pos + i) % L`` instead, where pos counts the symbols pushed and not popped: a run
of short calls (the few pixels of an image's last wavefronts, coded first) then fills
every lane, not just the first few, so a bits-back pop soon after finds bits in each lane
instead of an empty head. Everything below holds with that lane map.

Symbol i of a call uses lane ``i % L``. A call with n > L symbols works in chunks of L;
``push`` does the chunks last to first and ``pop`` first to last, so ``pop(n)`` returns
the symbols of ``push`` of the same n in the same order (a stack of calls: pop the calls
in reverse order). Within a chunk, the lanes that overflow emit their words in ascending
lane order as one block; on ``pop`` exactly those lanes need a refill and read the top
block back in the same lane order, which is the mirror.

The empty stack (what bits-back pops from)
------------------------------------------
Below the bottom of the tail lies an endless run of zero words. So a pop that needs a
word from an empty tail reads 0, and a zero word pushed onto an empty tail is not stored
(it is part of that run already). Both sides see the same thing, the stored tail never
starts with a zero word, and pop-then-push restores the exact state, empty or not. A lane
at 2**32 gives ``cf = 0`` (for every p <= 32), so popping from a fresh stack returns, in
each lane, the symbol holding cf = 0 at first and then whatever the zero words dictate:
deterministic "random" bits that are not free. What was popped from nothing is paid for
in the final size when those symbols' information is pushed back (the start-up cost of
bits-back; DESIGN.md "Start-up bits").

Serialization and its overhead
------------------------------
``to_words``: ``[tail bottom..top] + [lo_0, hi_0, ..., lo_{m-1}, hi_{m-1}] + [m]``, where
m is one more than the last lane not at 2**32 (lanes at or beyond m are empty and cost
nothing); a rotating stack keeps its lane position in the count word's high 16 bits. So the size is ``32 * (tail + 2m + 1)`` bits: one count word, and 64 bits per
used lane, of which ``log2(h) - 32`` bits are information; the overhead per used lane is
``96 - log2(h)``, between 32 and 64 bits (about 48 on average for a long message).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

HEAD_MIN = 1 << 32          # a head lies in [2**32, 2**64); exactly 2**32 is an empty lane
WORD_BITS = 32
MAX_PREC = 32
MAX_LANES = 1 << 20
ROTATE_MAX_LANES = 1 << 16  # a rotating stack's lane position shares the count word

_LOW = np.uint64(0xFFFFFFFF)
_WORD = np.uint64(WORD_BITS)
_HEAD_MIN = np.uint64(HEAD_MIN)

# find(cf, sl) -> (symbols, start, freq), for the chunk of symbol indices sl
Find = Callable[[np.ndarray, slice], "tuple[np.ndarray, np.ndarray, np.ndarray]"]


def _check_prec(prec: int) -> None:
    if not isinstance(prec, (int, np.integer)) or not 1 <= prec <= MAX_PREC:
        raise ValueError(f"precision must be an integer in 1..{MAX_PREC}, not {prec!r}")


def _int_array(a, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 1 or not (a.dtype.kind in "iu" or a.size == 0):
        raise TypeError(f"{name} must be a 1-d integer array")
    return a.astype(np.int64, copy=False)


class Stack:
    """L rANS lanes (uint64 heads) over one shared tail of uint32 words.

    >>> import numpy as np
    >>> cdf = np.array([0, 3, 5, 8])                # three symbols out of 2**3
    >>> msg = np.array([0, 2, 1, 0, 2, 2])
    >>> s = Stack(lanes=4)
    >>> s.push(cdf[msg], cdf[msg + 1] - cdf[msg], prec=3)
    >>> t = Stack.from_words(s.to_words(), lanes=4)
    >>> def find(cf, sl):
    ...     x = np.searchsorted(cdf, cf, side="right") - 1
    ...     return x, cdf[x], cdf[x + 1] - cdf[x]
    >>> bool(np.all(t.pop(6, 3, find) == msg)), t.bits()   # empty again: the count word
    (True, 32)
    """

    def __init__(self, lanes: int, rotate: bool = False):
        if not isinstance(lanes, (int, np.integer)) or not 1 <= lanes <= MAX_LANES:
            raise ValueError(f"lanes must be an integer in 1..{MAX_LANES}, not {lanes!r}")
        if rotate and lanes > ROTATE_MAX_LANES:
            raise ValueError(f"a rotating stack has at most {ROTATE_MAX_LANES} lanes")
        self.lanes = int(lanes)
        self.rotate = bool(rotate)
        self._pos = 0               # rotating stacks: the lane of the next pushed symbol
        self.head = np.full(self.lanes, HEAD_MIN, dtype=np.uint64)
        self._tail = np.zeros(256, dtype=np.uint32)
        self._size = 0

    # ------------------------------------------------ the tail (mirrors of each other)

    def _put(self, words: np.ndarray) -> None:
        """Append words (bottom to top); zero words landing on an empty tail are dropped."""
        if self._size == 0:
            nz = np.flatnonzero(words)
            if len(nz) == 0:
                return
            words = words[nz[0]:]
        end = self._size + len(words)
        if end > len(self._tail):
            grown = np.zeros(max(end, 2 * len(self._tail)), dtype=np.uint32)
            grown[:self._size] = self._tail[:self._size]
            self._tail = grown
        self._tail[self._size:end] = words
        self._size = end

    def _take(self, k: int) -> np.ndarray:
        """Remove the top k words and return them (uint64) in the order ``_put`` got them;
        beyond the bottom, zeros."""
        s = self._size
        if k <= s:
            self._size = s - k
            return self._tail[s - k:s].astype(np.uint64)
        out = np.zeros(k, dtype=np.uint64)
        out[k - s:] = self._tail[:s]
        self._size = 0
        return out

    # ------------------------------------------------ push and pop (mirrors)

    def _lanes(self, a: int, b: int):
        """The lanes of symbols a .. b-1 of a call (b - a <= L): lanes 0 .. b-a-1, or on a
        rotating stack lanes pos + a .. pos + b - 1 (mod L), pos counting every symbol
        pushed and not yet popped, so short calls still spread over all lanes."""
        if not self.rotate:
            return slice(0, b - a)
        return (self._pos + np.arange(a, b)) % self.lanes

    def push(self, start, freq, prec: int) -> None:
        """Push n symbols, symbol i the interval [start[i], start[i] + freq[i]) of 2**prec
        (1 <= freq, start + freq <= 2**prec), onto lanes i % L."""
        _check_prec(prec)
        start, freq = _int_array(start, "start"), _int_array(freq, "freq")
        n = len(start)
        if len(freq) != n:
            raise ValueError("start and freq differ in length")
        if n == 0:
            return
        if freq.min() < 1 or start.min() < 0 or (start + freq).max() > 1 << prec:
            raise ValueError(f"every symbol needs 1 <= freq and 0 <= start, start + freq <= 2**{prec}")
        s, f = start.astype(np.uint64), freq.astype(np.uint64)
        p, emit_shift = np.uint64(prec), np.uint64(64 - prec)
        L = self.lanes
        for a in range((n - 1) // L * L, -1, -L):        # chunks last to first
            b = min(a + L, n)
            lanes = self._lanes(a, b)
            h, fc = self.head[lanes], f[a:b]
            over = (h >> emit_shift) >= fc                 # h >= f * 2**(64-p), without overflow
            if over.any():
                self._put((h[over] & _LOW).astype(np.uint32))
                np.right_shift(h, _WORD, out=h, where=over)
            q = h // fc
            h -= q * fc                                   # h mod f
            h += s[a:b]
            q <<= p
            h += q
            self.head[lanes] = h
        self._pos = (self._pos + n) % L

    def pop(self, n: int, prec: int, find: Find) -> np.ndarray:
        """Pop n symbols (the mirror of ``push``): per chunk, ``find(cf, sl)`` maps the
        lanes' cf = head mod 2**prec (int64) to (symbols, start, freq) with
        start <= cf < start + freq; returns the n symbols."""
        _check_prec(prec)
        n = int(n)
        if n < 0:
            raise ValueError("n must be >= 0")
        mask, p = np.uint64((1 << prec) - 1), np.uint64(prec)
        L = self.lanes
        self._pos = (self._pos - n) % L
        out = None
        for a in range(0, n, L):                          # chunks first to last
            b = min(a + L, n)
            lanes = self._lanes(a, b)
            h = self.head[lanes]
            cf = (h & mask).astype(np.int64)
            sym, start, freq = find(cf, slice(a, b))
            start, freq = np.asarray(start, dtype=np.int64), np.asarray(freq, dtype=np.int64)
            if (start.shape != cf.shape or freq.shape != cf.shape or not (start <= cf).all()
                    or not (cf < start + freq).all() or start.min() < 0
                    or (start + freq).max() > 1 << prec):
                raise ValueError("find() returned intervals that do not hold cf")
            g = freq.astype(np.uint64) * (h >> p)
            g += (cf - start).astype(np.uint64)
            under = g < _HEAD_MIN
            k = int(np.count_nonzero(under))
            if k:
                g[under] = (g[under] << _WORD) | self._take(k)
            self.head[lanes] = g
            sym = np.asarray(sym)
            if out is None:
                out = np.empty(n, dtype=sym.dtype)
            out[a:b] = sym
        return out if out is not None else np.empty(0, dtype=np.int64)

    # ------------------------------------------------ serialization (mirrors)

    def _used(self) -> int:
        """One more than the last lane not at 2**32 (0 when every lane is empty)."""
        nz = np.flatnonzero(self.head != _HEAD_MIN)
        return int(nz[-1]) + 1 if len(nz) else 0

    def to_words(self) -> np.ndarray:
        """The whole state as uint32 words: tail, then (lo, hi) of lanes 0..m-1, then m."""
        m = self._used()
        out = np.empty(self._size + 2 * m + 1, dtype=np.uint32)
        out[:self._size] = self._tail[:self._size]
        h = self.head[:m]
        out[self._size:-1:2] = h & _LOW
        out[self._size + 1:-1:2] = h >> _WORD
        out[-1] = m | (self._pos << 16 if self.rotate else 0)
        return out

    @classmethod
    def from_words(cls, words, lanes: int, rotate: bool = False) -> "Stack":
        """The inverse of ``to_words`` (``lanes`` as when written); ValueError on words no
        stack can have written."""
        w = np.asarray(words)
        if w.ndim != 1 or not np.issubdtype(w.dtype, np.integer) or len(w) == 0:
            raise ValueError("stack words must be a non-empty 1-d integer array")
        if w.dtype != np.uint32:
            if w.min() < 0 or w.max() > 0xFFFFFFFF:
                raise ValueError("stack words must be 32-bit")
            w = w.astype(np.uint32)
        st = cls(lanes, rotate)
        m = int(w[-1])
        if rotate:
            m, st._pos = m & 0xFFFF, m >> 16
            if st._pos >= st.lanes:
                raise ValueError("stack words: lane position out of range")
        if m > st.lanes or 2 * m + 1 > len(w):
            raise ValueError("stack words: lane count out of range")
        size = len(w) - 1 - 2 * m
        lo = w[size:-1:2].astype(np.uint64)
        hi = w[size + 1:-1:2].astype(np.uint64)
        if m and (hi.min() == 0 or (hi[-1] == 1 and lo[-1] == 0)):
            raise ValueError("stack words: a head is out of range")
        if size and w[0] == 0:
            raise ValueError("stack words: the tail starts with a zero word")
        st.head[:m] = (hi << _WORD) | lo
        st._put(w[:size])
        return st

    # ------------------------------------------------ sizes

    def bits(self) -> int:
        """The exact size of ``to_words()`` in bits."""
        return WORD_BITS * (self._size + 2 * self._used() + 1)

    def content_bits(self) -> float:
        """Information held: 32 per tail word plus log2(head) - 32 per lane. Float, for
        rate accounting only (never decides a coded bit)."""
        return WORD_BITS * self._size + float(np.sum(np.log2(self.head.astype(np.float64)) - WORD_BITS))

    def copy(self) -> "Stack":
        st = Stack(self.lanes, self.rotate)
        st._pos = self._pos
        st.head[:] = self.head
        st._tail = self._tail[:max(self._size, 1)].copy()
        st._size = self._size
        return st


def code_length(freq, prec: int) -> float:
    """Ideal code length in bits of symbols with these frequencies out of 2**prec."""
    f = np.asarray(freq, dtype=np.float64)
    return float(np.sum(prec - np.log2(f)))
