"""Bits-back coding of one photograph of any size with the integer photo VLAE.

Decoder order (the encoder runs its exact mirror, last event first):

```
 for each wavefront step t = 0 .. W + (h+1)(H-1) - 1:
     pop   z row r  under p(z_r | z_r-1)   for every latent row first needed at step t
     pop   x  of the pixels (i, j) with (h+1) i + j = t   (R, then G | R, then B | R, G)
     push  z row r  under q(z_r | x)       for every latent row no pixel still needs,
                                           once the pixels q(z_r | x) reads are all known
```

so the bits that the encoder takes back from the stack when it pops a latent row from
q(z|x) are the bits of pixels it has already pushed. Only the last few latent rows (the
first the encoder meets) would find the stack empty; they are not coded (z = 0 on both
sides), and ``stats`` counts them.

Pixels are coded with the exact integer logistic mixtures of ``mixture.py`` on the
vectorized rANS of ``rans.py`` (two CDF values per coded sub-pixel, a binary search when
decoding); latents with the latent grid's integer Gaussian tables (``numerics``).
Images are padded to a multiple of 8 by replicating their last row and column; only the
real pixels are coded (the decoder rebuilds the padding as it goes).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import mixture, rans
from . import numerics as nx
from .photo_int import STRIDE, IntPhotoVLAE, _conv_transpose, pixel_input

PREC = 24                       # rANS precision of pixels and latents (2**24 totals)
LANES = 64                      # interleaved rANS lanes (each used lane costs ~32 bits)
BAND = 32                       # pixel rows of z features computed together (a multiple of 8)
POST_GROUP = 8                  # latent rows whose q(z|x) is computed (and pushed) together


# ---------------------------------------------------------------- dependencies

def _up(o: int) -> int:        # ConvTranspose(4, 2, 1): output row o reads input rows (o-1)//2 .. (o+1)//2
    return (o + 1) // 2


def _down(o: int) -> int:
    return (o - 1) // 2


def zrows_of_pixel_row(i: int, hz: int) -> tuple[int, int]:
    """The latent rows whose values reach the z features of pixel row i (3x3 conv, then
    three transposed convs)."""
    return max(0, _down(_down(_down(i))) - 1), min(hz - 1, _up(_up(_up(i))) + 1)


def zrows_of_band(b: int, hz: int) -> tuple[int, int]:
    """The latent rows that reach any pixel row of band b (pixel rows BAND*b ..
    BAND*(b+1)-1): z features are computed a band at a time (one pass instead of one
    per row), so both sides need all of them known before the band's first use."""
    return zrows_of_pixel_row(BAND * b, hz)[0], zrows_of_pixel_row(BAND * b + BAND - 1, hz)[1]


def pixel_rows_of_latent_row(r: int) -> int:
    """Last padded pixel row that q(z_r | x) reads (three 4x4 stride-2 convs and a 3x3)."""
    return 8 * r + 22


@dataclass
class Schedule:
    H: int
    W: int
    h: int
    hz: int
    steps: int
    pops: dict = field(default_factory=dict)     # step -> latent rows popped before it
    pushes: dict = field(default_factory=dict)   # step -> groups of latent rows pushed after it
    final_pops: list = field(default_factory=list)
    direct_groups: list = field(default_factory=list)   # rows not coded: z = 0 (see encode)
    groups: list = field(default_factory=list)   # every pushed group, in push-step order

    def pixels(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cols) of the pixels decoded at wavefront step t, rows increasing."""
        lo = max(0, -(-(t - self.W + 1) // (self.h + 1)))
        hi = min(self.H - 1, t // (self.h + 1))
        i = np.arange(lo, hi + 1)
        return i, t - (self.h + 1) * i


def schedule(H: int, W: int, h: int) -> Schedule:
    hz = -(-H // STRIDE)
    steps = W + (h + 1) * (H - 1)
    s = Schedule(H, W, h, hz, steps)
    first_need = {}
    last_use = {}
    for i in range(H):
        lo, hi = zrows_of_band(i // BAND, hz)
        for r in range(0, hi + 1):
            first_need.setdefault(r, i)
        for r in range(lo, hi + 1):
            last_use[r] = i
    pop_step = {}
    for r in range(hz):
        if r in first_need:
            pop_step[r] = (h + 1) * first_need[r]
            s.pops.setdefault(pop_step[r], []).append(r)
        else:
            s.final_pops.append(r)
    push_step, final = {}, []
    for r in range(hz):
        last = min(H - 1, max(pixel_rows_of_latent_row(r), last_use.get(r, -1)))
        t = (h + 1) * last + W - 1
        # the encoder needs z_r (popped from q) before it pushes z_r+1 under the prior
        nxt = pop_step.get(r + 1, None) if r + 1 < hz else -1
        if t >= steps - 1 or nxt is None or nxt > t:
            final.append(r)
        else:
            push_step[r] = t
    # Rows pushed during decoding go in groups of POST_GROUP (one posterior pass each),
    # pushed when the group's last row is due; the rows the encoder must pop first (from
    # a stack with nothing on it yet) form one group of their own, kept as small as it can be.
    groups: list[list[int]] = []
    for r in (r for r in range(hz) if r in push_step):   # consecutive rows only
        if groups and groups[-1][-1] == r - 1 and len(groups[-1]) < POST_GROUP:
            groups[-1].append(r)
        else:
            groups.append([r])
    for group in groups:
        s.pushes.setdefault(max(push_step[r] for r in group), []).append(group)
    s.groups = [g for t in sorted(s.pushes) for g in s.pushes[t]]
    for r in final:
        if s.direct_groups and s.direct_groups[-1][-1] == r - 1:
            s.direct_groups[-1].append(r)
        else:
            s.direct_groups.append([r])
    if final:   # these rows are not coded at all: z = 0 on both sides (see encode)
        gone = set(final)
        s.pops = {t: [r for r in rs if r not in gone] for t, rs in s.pops.items()}
        s.final_pops = [r for r in s.final_pops if r not in gone]
    return s


# ---------------------------------------------------------------- latents

def _cum(freqs: np.ndarray) -> np.ndarray:
    """Cumulative table of a latent grid's frequencies (summing to 2**24) after giving
    every cell at least 1 (a cell q(z|x) can land on may have no prior mass at 24
    bits): f' = 1 + floor(f (2**24 - n) / 2**24), the remainder to the largest cell."""
    f = freqs.astype(np.int64)
    n = f.shape[1]
    g = 1 + ((f * ((1 << PREC) - n)) >> PREC)
    g[np.arange(len(g)), f.argmax(1)] += (1 << PREC) - g.sum(1)
    c = np.zeros((f.shape[0], n + 1), np.int64)
    np.cumsum(g, axis=1, out=c[:, 1:])
    return c


def _push_table(stack: rans.Stack, freqs: np.ndarray, k: np.ndarray) -> None:
    cum = _cum(freqs)
    rows = np.arange(len(k))
    stack.push(cum[rows, k], cum[rows, k + 1] - cum[rows, k], PREC)


def _pop_table(stack: rans.Stack, freqs: np.ndarray) -> np.ndarray:
    return _pop_cum(stack, _cum(freqs))


def _pop_cum(stack: rans.Stack, cum: np.ndarray) -> np.ndarray:
    def find(cf, sl):
        c = cum[sl]
        k = (c[:, 1:] <= cf[:, None]).sum(1)
        rows = np.arange(len(k))
        return k, c[rows, k], c[rows, k + 1] - c[rows, k]
    return stack.pop(len(cum), PREC, find)


class _Latents:
    """Latent rows as grid indices, and the tables both sides build from them."""

    def __init__(self, net: IntPhotoVLAE, hz: int, wz: int):
        self.net, self.g = net, net.grid
        self.k = np.zeros((hz, wz, net.cz), np.int64)      # grid index + K
        self.known = np.zeros(hz, bool)

    def z(self, r: int) -> np.ndarray:
        return self.g.values(self.k[r] - self.g.K)

    def prior_freqs(self, r: int) -> np.ndarray:
        above = self.z(r - 1) if r > 0 else np.zeros_like(self.z(r))
        return self.g.prior_freqs(self.net.prior_means(above).ravel())

    def map(self) -> np.ndarray:
        """z (Hz, Wz, Cz) fixed point; unknown rows are zero."""
        return self.g.values(self.k - self.g.K) * self.known[:, None, None]


# ---------------------------------------------------------------- pixels

class _Rows:
    """z features of pixel rows, computed per latent row band from the latent rows that
    reach them (identical on both sides), dropped once no longer needed."""

    def __init__(self, net: IntPhotoVLAE, lat: _Latents, hp: int):
        self.net, self.lat, self.hp = net, lat, hp
        self.bands: dict[int, np.ndarray] = {}

    def get(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        out = np.empty((len(i), self.net.zf_channels))
        for b in range(int(i[0]) // BAND, int(i[-1]) // BAND + 1):
            m = (i // BAND) == b
            out[m] = self.band(b)[i[m] % BAND, j[m]]
        return out

    def band(self, b: int) -> np.ndarray:
        if b not in self.bands:
            # float32 holds these integers exactly (|v| <= 2**19): half the memory
            self.bands[b] = _band_features(self.net, self.lat.map(), BAND * b, BAND).astype(np.float32)
        return self.bands[b]

    def drop_below(self, b: int) -> None:
        for k in [k for k in self.bands if k < b]:
            del self.bands[k]

    def drop_above(self, b: int) -> None:
        for k in [k for k in self.bands if k > b]:
            del self.bands[k]


def _set_zero(lat: "_Latents", rows: list[int]) -> None:
    for r in rows:
        lat.k[r] = lat.g.K          # grid index of z = 0
        lat.known[r] = True


def _band_features(net: IntPhotoVLAE, z: np.ndarray, r0: int, n: int) -> np.ndarray:
    """z features of pixel rows r0 .. r0+n-1 (z: the whole latent map, fixed point),
    computing at every layer only the rows the next one reads: each transposed conv's
    output row o reads input rows (o-1)//2 .. (o+1)//2, the 3x3 conv rows r-1 .. r+1.
    A crop's own zero padding is never read (or is the image's true border), so these
    are the integers of the whole-image pass (tests check it)."""
    hz = z.shape[0]
    need = [(r0, r0 + n - 1)]                       # rows wanted at each layer, last layer first
    for _ in range(3):
        lo, hi = need[-1]
        need.append((_down(lo), _up(hi)))
    lo0, hi0 = max(0, need[-1][0]), min(hz - 1, need[-1][1])   # rows of the 3x3 conv's output
    za, ze = max(0, lo0 - 1), min(hz, hi0 + 2)
    a = net.zf_in(z[za:ze], elu=True)[lo0 - za:hi0 + 1 - za]   # rows lo0 .. hi0
    start = lo0
    for phases, (lo, hi) in zip(net.zf_up, reversed(need[:-1])):
        a = _conv_transpose(a, phases)                              # rows 2*start ..
        lo, hi = max(lo, 0), min(hi, 2 * (start + len(a) // 2) - 1)
        a = a[lo - 2 * start:hi + 1 - 2 * start]
        start = lo
    return a


def _channel_tables(net: IntPhotoVLAE, p: np.ndarray, c: int, prev: list[np.ndarray]):
    loc, inv, logits = net.channel_mixture(p, c, prev)
    return loc, inv, mixture.mixture_weights(logits)


@dataclass
class PhotoStats:
    bits: int = 0
    uncoded_rows: int = 0          # latent rows set to z = 0 instead of coded (the start-up rows)


def _group_key(g: list[int]) -> tuple[int, int]:
    return g[0], g[-1]


def _enough_bits(stack: rans.Stack, tables: list[np.ndarray]) -> bool:
    """Whether the stack holds comfortably more than a bits-back pop of these q(z|x) tables
    takes back (their entropy). The encoder alone decides (floats are fine here: the choice
    travels in the file as one bit per group); a pop from a short stack would draw z from
    the zero words below its bottom, far out in q's tail, and wreck those pixels' rates."""
    need = 0.0
    for f in tables:
        q = f[f > 0] / float(1 << PREC)
        need -= float(np.sum(q * np.log2(q)))
    return stack.content_bits() >= 1.25 * need + 64 * stack.lanes


def _step_params(net: IntPhotoVLAE, vpad: np.ndarray, rows: _Rows, ii: np.ndarray, jj: np.ndarray) -> np.ndarray:
    """Head outputs of the pixels of one wavefront, from their causal windows and z
    features: the one path both sides take (so they compute the same integers)."""
    return net.params_from_acc(net.window(net.windows(vpad, ii, jj), extra=rows.get(ii, jj)))


def _posterior_group(net: IntPhotoVLAE, xp: np.ndarray, group: list[int]):
    """q(z_r | x) tables of a group of latent rows, from a crop of padded pixel rows
    8(r0-3) .. 8(r1+3)-1: latent row r reads rows 8r-15 .. 8r+22, and the crop's own zero
    padding reaches no layer row it reads (tests check crop against whole image), so
    the integers equal the whole image's. Rows past the decoder's progress may hold
    anything: nothing reads them."""
    r0, r1 = group[0], group[-1]
    a = max(0, STRIDE * (r0 - 3))
    e = min(xp.shape[0], STRIDE * (r1 + 4))
    mean, log_std = net.posterior(xp[a:e])
    sl = slice(r0 - a // STRIDE, r1 + 1 - a // STRIDE)
    return [net.grid.posterior_freqs(m.ravel(), s.ravel()) for m, s in zip(mean[sl], log_std[sl])]


def _geometry(H: int, W: int):
    return -(-H // STRIDE) * STRIDE, -(-W // STRIDE) * STRIDE


def lanes_for(H: int, W: int, h: int) -> int:
    """rANS lanes: as many as a wavefront has pixels, at most LANES (each used lane
    costs 32 to 64 bits in the file, so small images use few)."""
    return max(1, min(LANES, H, (W + h) // (h + 1)))


def encode(net: IntPhotoVLAE, x: np.ndarray) -> tuple[np.ndarray, PhotoStats]:
    """One image (H, W, C) uint8 -> rANS words (uint32)."""
    H, W, C = x.shape
    h = net.h
    hp, wp = _geometry(H, W)
    xp = np.pad(x, ((0, hp - H), (0, wp - W), (0, 0)), mode="edge")
    sch = schedule(H, W, h)
    hz, wz = hp // STRIDE, wp // STRIDE
    lat = _Latents(net, hz, wz)
    rows = _Rows(net, lat, hp)
    stack = rans.Stack(lanes_for(H, W, h), rotate=True)
    stats = PhotoStats()
    # float32 holds the inputs (2x - 255) * 2**12 exactly (|v| < 2**20): a quarter of x's float64
    vpad = np.pad(pixel_input(xp).astype(np.float32), ((h, 0), (h, h), (0, 0)))

    skipped: set[tuple[int, int]] = set()
    direct_rows: set[int] = set()

    def pop_q(group: list[int]) -> None:
        tables = _posterior_group(net, xp, group)
        if not _enough_bits(stack, tables):      # too early for bits-back: not coded
            skipped.add(_group_key(group))
            direct_rows.update(group)
            _set_zero(lat, group)
            stats.uncoded_rows += len(group)
            return
        for r, freqs in zip(reversed(group), reversed(tables)):
            lat.k[r] = _pop_table(stack, freqs).reshape(wz, net.cz)
            lat.known[r] = True

    def push_prior(r: int) -> None:
        _push_table(stack, lat.prior_freqs(r), lat.k[r].ravel())

    def push_pixels(t: int) -> None:
        ii, jj = sch.pixels(t)
        p = _step_params(net, vpad, rows, ii, jj)
        vals = x[ii, jj].astype(np.int64)                     # (n, C)
        prev: list[np.ndarray] = []
        coded = []
        for c in range(C):
            coded.append(mixture.start_freq(vals[:, c], *_channel_tables(net, p, c, prev)))
            prev = prev + [2 * vals[:, c] - 255]
        for start, freq in reversed(coded):                   # B, G, R: the decoder pops R first
            stack.push(start, freq, PREC)

    # The mirror of the decoder's order, last event first. The latent rows the encoder
    # meets first would be popped from an empty stack, where a pop yields the grid's
    # first cell (z = -10), not a draw from q; coding them directly would cost ~5 bits
    # per latent. They are not coded at all: z = 0 on both sides (the photo models'
    # latents carry little, so the pixels of those rows lose little).
    for g in sch.direct_groups:
        _set_zero(lat, g)
        stats.uncoded_rows += len(g)
    for r in reversed(sch.final_pops):
        push_prior(r)
    for t in reversed(range(sch.steps)):
        for g in reversed(sch.pushes.get(t, [])):
            pop_q(g)
        push_pixels(t)
        for r in reversed(sch.pops.get(t, [])):
            if r not in direct_rows:
                push_prior(r)
        if t % (h + 1) == 0:          # bands below the wavefront are done
            rows.drop_above(t // (h + 1) // BAND + 1)
    # Which groups were not coded, one bit each, last on the stack: the decoder's first pop.
    if sch.groups:
        mask = np.array([_group_key(g) in skipped for g in sch.groups], np.int64)
        stack.push(mask, np.ones_like(mask), 1)
    words = stack.to_words()
    stats.bits = 32 * len(words)
    return words, stats


def decode(net: IntPhotoVLAE, words: np.ndarray, H: int, W: int) -> np.ndarray:
    """rANS words -> the image (H, W, C) uint8."""
    C, h = net.channels, net.h
    hp, wp = _geometry(H, W)
    sch = schedule(H, W, h)
    hz, wz = hp // STRIDE, wp // STRIDE
    lat = _Latents(net, hz, wz)
    rows = _Rows(net, lat, hp)
    stack = rans.Stack.from_words(words, lanes_for(H, W, h), rotate=True)
    x = np.zeros((hp, wp, C), np.uint8)
    vpad = np.zeros((hp + h, wp + 2 * h, C), np.float32)   # exact, as in encode

    def pop_prior(r: int) -> None:
        lat.k[r] = _pop_table(stack, lat.prior_freqs(r)).reshape(wz, net.cz)
        lat.known[r] = True

    for g in sch.direct_groups:
        _set_zero(lat, g)
    skipped: set[tuple[int, int]] = set()
    direct_rows: set[int] = set()
    if sch.groups:
        mask = stack.pop(len(sch.groups), 1, lambda cf, sl: (cf, cf, np.ones_like(cf)))
        for g, m in zip(sch.groups, mask):
            if m:
                skipped.add(_group_key(g))
                direct_rows.update(g)
                _set_zero(lat, g)

    def push_q(group: list[int]) -> None:
        if _group_key(group) in skipped:
            return
        for r, freqs in zip(group, _posterior_group(net, x, group)):
            _push_table(stack, freqs, lat.k[r].ravel())

    def pop_pixels(t: int) -> None:
        ii, jj = sch.pixels(t)
        p = _step_params(net, vpad, rows, ii, jj)
        prev: list[np.ndarray] = []
        for c in range(C):
            loc, inv, w = _channel_tables(net, p, c, prev)
            xc = stack.pop(len(ii), PREC, lambda cf, sl: mixture.find(cf, loc[sl], inv[sl], w[sl]))
            x[ii, jj, c] = xc
            prev = prev + [2 * xc.astype(np.int64) - 255]
        vpad[ii + h, jj + h] = pixel_input(x[ii, jj])
        last = jj == W - 1                # replicate the right edge into the padding columns
        if last.any():
            ir = ii[last]
            vpad[ir + h, W + h:wp + h] = vpad[ir + h, W - 1 + h][:, None, :]
            x[ir, W:] = x[ir, W - 1][:, None, :]
            if ir[-1] == H - 1:          # the bottom padding rows, for q(z|x) of the last rows
                x[H:] = x[H - 1]
        rows.drop_below(int(ii[0]) // BAND)

    for t in range(sch.steps):
        for r in sch.pops.get(t, []):
            if r not in direct_rows:
                pop_prior(r)
        pop_pixels(t)
        for g in sch.pushes.get(t, []):
            push_q(g)
    for r in sch.final_pops:
        pop_prior(r)
    # (the final groups were coded directly: nothing to push back)
    return x[:H, :W]



# ---------------------------------------------------------------- a quick estimate

ESTIMATE_BAND = 8          # pixel rows measured per ESTIMATE_EVERY rows
ESTIMATE_EVERY = 64


def estimate_bits(net: IntPhotoVLAE, x: np.ndarray) -> float:
    """About how many bits ``encode`` would write for x (H, W, C), from the integer
    model's code length on one band of ESTIMATE_BAND rows in every ESTIMATE_EVERY (an
    eighth of the pixels, one parallel pass each, z = 0: these models' latents carry
    almost nothing), scaled to the whole image. For the encoder's choice of coder only
    (``anysize.choose`` skips a model that is clearly beaten): floats are fine here, the
    choice travels in the file."""
    H, W, C = x.shape
    h = net.h
    zf = net.zfeatures(np.zeros((5, 5, net.cz)))[16:24, 16:24].mean((0, 1))   # away from the borders
    bits, n = 0.0, 0
    for r0 in range(0, H, ESTIMATE_EVERY):
        a, e = max(0, r0 - h), min(H, r0 + ESTIMATE_BAND)
        crop = x[a:e]
        p = net.pixel_params(crop, np.broadcast_to(zf, crop.shape[:2] + zf.shape))[r0 - a:]
        p = p.reshape(-1, p.shape[-1])
        vals = crop[r0 - a:].reshape(-1, C).astype(np.int64)
        prev: list[np.ndarray] = []
        for c in range(C):
            _, freq = mixture.start_freq(vals[:, c], *_channel_tables(net, p, c, prev))
            bits -= float(np.log2(freq / float(1 << PREC)).sum())
            prev = prev + [2 * vals[:, c] - 255]
        n += len(vals)
    return bits * (H * W) / max(n, 1) + 32 * (2 * lanes_for(H, W, h) + 1)
