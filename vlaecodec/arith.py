"""Exact arithmetic coding with Python integers, for the start of a chain.

Why not ANS here: an ANS coder that starts from an empty state wastes up to its
probability precision (~22 bits with constriction's 24-bit models) on the first
symbol it pushes, which is more than a tenth of a binarized digit's whole code.
An arithmetic coder with unbounded integers has no such start-up cost: its output
is the shortest byte string whose value lies in the final interval, so a message
costs its information content plus less than one byte. The integers grow with the
message (~16 bits per symbol), which is fine for the few images coded this way.

Every symbol is coded with integer frequencies (cumulative ``cum``, ``freq``, out of
``total``); callers quantize probabilities to integers identically on both sides, so
nothing here depends on floating point.

Encoder state: the interval [low, low + width) / denom. Decoder state, with V the
code's value scaled by 2**(8 * len(code)): rem = V * denom - low * 2**(8n) and
w = width * 2**(8n); a symbol s is the one with cum_s * w <= rem * total < (cum_s + freq_s) * w.
Both update with additions, shifts and small multiplications only.
"""
from __future__ import annotations

from bisect import bisect_right


class ArithEncoder:
    def __init__(self) -> None:
        self.low, self.width, self.denom = 0, 1, 1

    def encode(self, cum: int, freq: int, total: int) -> None:
        self.low = self.low * total + cum * self.width
        self.width *= freq
        self.denom *= total

    def encode_bit(self, bit: int, freq0: int, bits: int) -> None:
        """Binary symbol with P(0) = freq0 / 2**bits (0 < freq0 < 2**bits)."""
        self.low <<= bits
        if bit:
            self.low += freq0 * self.width
            self.width *= (1 << bits) - freq0
        else:
            self.width *= freq0
        self.denom <<= bits

    def finish(self) -> bytes:
        """Shortest byte string whose value (a binary fraction) lies in the interval."""
        lo, hi, d = self.low, self.low + self.width, self.denom
        n = 0
        while True:
            scale = 1 << (8 * n)
            v = -((-lo * scale) // d)  # ceil(lo * scale / d)
            if v * d < hi * scale:
                return v.to_bytes(n, "big") if n else b""
            n += 1


class ArithDecoder:
    def __init__(self, code: bytes) -> None:
        self.rem = int.from_bytes(code, "big") if code else 0
        self.w = 1 << (8 * len(code))

    def decode(self, cums: list[int], total: int) -> int:
        """General symbol: ``cums`` are the cumulative frequencies (cums[0] == 0), the last
        symbol ending at ``total``."""
        t = self.rem * total
        # The symbol is the last s with cums[s] * w <= t, i.e. cums[s] <= t // w (all
        # integers): one division and a bisection, not a scan of the alphabet.
        s = max(bisect_right(cums, t // self.w) - 1, 0)
        hi = cums[s + 1] if s + 1 < len(cums) else total
        self.rem = t - cums[s] * self.w
        self.w *= hi - cums[s]
        return s

    def decode_uniform(self, size: int) -> int:
        t = self.rem * size
        s = min(t // self.w, size - 1)
        self.rem = t - s * self.w
        return s

    def decode_bit(self, freq0: int, bits: int) -> int:
        t = self.rem << bits
        if t >= freq0 * self.w:
            self.rem = t - freq0 * self.w
            self.w *= (1 << bits) - freq0
            return 1
        self.rem = t
        self.w *= freq0
        return 0
