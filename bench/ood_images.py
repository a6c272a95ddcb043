"""Our own out-of-distribution test images (issue 19, item 4): non-photographic pictures
unlike anything the models were trained on, drawn from a seed, the same pixels every run.

* ``graphics(seed)``: 12 RGB graphics drawn with Pillow's ImageDraw and the installed
  DejaVu fonts -- a bar chart, a line chart, a pie chart, a UI mock, pixel art (a small
  palette sprite upscaled nearest-neighbour), a table, two vector-style wallpapers
  (smooth gradients and shapes), a diagram with arrows, a text terminal, a flat-colour
  map and a logo; 300x200 to 1200x800.
* ``gray(seed)``: the same 12 converted to 8-bit gray (Pillow's ``convert("L")``).
* ``documents(seed)``: 10 binary documents (0/1 arrays, 1 = black). Taken from
  ``bench/binary_docs.py`` (``make_documents``) when that file exists, otherwise from the
  small set here (``own_documents``).

No image comes from a Debian wallpaper package or any data set: everything is drawn here.

    python bench/ood_images.py OUT_DIR [--seed 0] [--sets rgb,gray,binary]

writes ``OUT_DIR/{rgb,gray,binary}/NAME.png`` (binary ones as 1-bit PNGs, mode "1").
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
SETS = ("rgb", "gray", "binary")
Draw = ImageDraw.ImageDraw


def font(size: int, face: str = "DejaVuSans") -> ImageFont.FreeTypeFont:
    path = FONT_DIR / f"{face}.ttf"
    if path.exists():
        return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size)     # no DejaVu: Pillow's own font (other pixels)


WORDS = ("data model image codec pixel value range total north south east west sales "
         "growth quarter region market share level index report summary result latent "
         "signal noise error rate bits file stream frame block table chart label green "
         "blue orange system network server client request response update status").split()


def words(rng: np.random.Generator, n: int) -> str:
    return " ".join(WORDS[i] for i in rng.integers(0, len(WORDS), n))


def palette(rng: np.random.Generator, n: int) -> list[tuple[int, int, int]]:
    base = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
            (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]
    order = rng.permutation(len(base))
    return [base[i] for i in order[:n]]


def axes(d: Draw, box: tuple[int, int, int, int], ymax: float, f: ImageFont.FreeTypeFont) -> None:
    x0, y0, x1, y1 = box
    for k in range(6):
        y = y1 - (y1 - y0) * k / 5
        d.line([(x0, y), (x1, y)], fill=(225, 225, 225))
        d.text((x0 - 8, y), f"{ymax * k / 5:.0f}", fill=(60, 60, 60), font=f, anchor="rm")
    d.line([(x0, y0), (x0, y1), (x1, y1)], fill=(40, 40, 40), width=2)


# ------------------------------------------------------------------------ graphics

def bar_chart(rng: np.random.Generator) -> Image.Image:
    W, H = 800, 500
    im = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(im)
    d.text((W // 2, 24), "Quarterly sales by region", fill=(20, 20, 20), font=font(22, "DejaVuSans-Bold"), anchor="mm")
    box = (70, 60, W - 150, H - 60)
    groups, series = 6, 3
    vals = rng.integers(10, 100, (groups, series))
    axes(d, box, 100, font(12))
    cols = palette(rng, series)
    gw = (box[2] - box[0]) / groups
    bw = gw * 0.8 / series
    for g in range(groups):
        for s in range(series):
            x = box[0] + g * gw + gw * 0.1 + s * bw
            y = box[3] - (box[3] - box[1]) * vals[g, s] / 100
            d.rectangle([x, y, x + bw - 2, box[3] - 1], fill=cols[s])
        d.text((box[0] + (g + 0.5) * gw, box[3] + 14), f"Q{g + 1}", fill=(40, 40, 40), font=font(13), anchor="mm")
    for s in range(series):
        y = 90 + 26 * s
        d.rectangle([W - 130, y, W - 114, y + 16], fill=cols[s])
        d.text((W - 106, y + 8), ["North", "South", "East"][s], fill=(30, 30, 30), font=font(14), anchor="lm")
    return im


def line_chart(rng: np.random.Generator) -> Image.Image:
    W, H = 900, 500
    im = Image.new("RGB", (W, H), (250, 250, 252))
    d = ImageDraw.Draw(im)
    d.text((70, 20), "Latency over the day (ms)", fill=(20, 20, 20), font=font(20), anchor="lm")
    box = (70, 50, W - 30, H - 50)
    axes(d, box, 250, font(12))
    n = 48
    for c in palette(rng, 3):
        y = np.cumsum(rng.normal(0, 8, n)) + rng.uniform(60, 180)
        y = np.clip(y, 5, 245)
        pts = [(box[0] + (box[2] - box[0]) * i / (n - 1), box[3] - (box[3] - box[1]) * v / 250) for i, v in enumerate(y)]
        d.line(pts, fill=c, width=3, joint="curve")
        for p in pts[::6]:
            d.ellipse([p[0] - 4, p[1] - 4, p[0] + 4, p[1] + 4], fill="white", outline=c, width=2)
    for h in range(0, 25, 4):
        d.text((box[0] + (box[2] - box[0]) * h / 24, box[3] + 14), f"{h:02d}:00", fill=(50, 50, 50), font=font(12), anchor="mm")
    return im


def pie_chart(rng: np.random.Generator) -> Image.Image:
    W, H = 600, 450
    S = 2                                        # drawn at 2x, downsampled: smooth edges
    im = Image.new("RGB", (W * S, H * S), "white")
    d = ImageDraw.Draw(im)
    shares = rng.dirichlet(np.ones(6) * 2)
    cols = palette(rng, 6)
    a = -90.0
    cx, cy, r = 230 * S, 235 * S, 180 * S
    for k, (s, c) in enumerate(zip(shares, cols)):
        b = a + 360 * s
        d.pieslice([cx - r, cy - r, cx + r, cy + r], a, b, fill=c, outline="white", width=3 * S)
        m = math.radians((a + b) / 2)
        d.text((cx + 0.65 * r * math.cos(m), cy + 0.65 * r * math.sin(m)), f"{100 * s:.0f}%",
               fill="white", font=font(15 * S, "DejaVuSans-Bold"), anchor="mm")
        d.rectangle([440 * S, (120 + 30 * k) * S, 458 * S, (138 + 30 * k) * S], fill=c)
        d.text((466 * S, (129 + 30 * k) * S), WORDS[int(rng.integers(len(WORDS)))], fill=(30, 30, 30),
               font=font(14 * S), anchor="lm")
        a = b
    d.text((W * S // 2, 22 * S), "Market share", fill=(20, 20, 20), font=font(20 * S, "DejaVuSans-Bold"), anchor="mm")
    return im.resize((W, H), Image.Resampling.LANCZOS)


def ui_mock(rng: np.random.Generator) -> Image.Image:
    W, H = 1024, 700
    im = Image.new("RGB", (W, H), (243, 244, 246))
    d = ImageDraw.Draw(im)
    d.rectangle([0, 0, W, 48], fill=(37, 99, 235))
    d.text((20, 24), "Settings", fill="white", font=font(20, "DejaVuSans-Bold"), anchor="lm")
    for k, t in enumerate(["Home", "Files", "Share", "Help"]):
        d.text((W - 320 + 75 * k, 24), t, fill=(220, 230, 255), font=font(15), anchor="lm")
    d.rectangle([0, 48, 220, H], fill=(255, 255, 255))
    for k in range(9):
        y = 70 + 40 * k
        if k == 2:
            d.rectangle([8, y - 14, 212, y + 16], fill=(219, 234, 254))
        d.ellipse([20, y - 6, 32, y + 6], fill=palette(rng, 1)[0])
        d.text((44, y), words(rng, 2).title(), fill=(31, 41, 55), font=font(14), anchor="lm")
    d.rounded_rectangle([250, 70, W - 30, H - 30], 10, fill="white", outline=(209, 213, 219))
    f = font(14)
    for k in range(6):
        y = 100 + 70 * k
        d.text((280, y), words(rng, 2).capitalize(), fill=(55, 65, 81), font=f)
        d.rounded_rectangle([280, y + 22, 700, y + 54], 5, fill="white", outline=(156, 163, 175))
        d.text((292, y + 38), words(rng, 3), fill=(107, 114, 128), font=f, anchor="lm")
        on = bool(rng.integers(2))
        d.rounded_rectangle([760, y + 26, 808, y + 50], 12, fill=(37, 99, 235) if on else (209, 213, 219))
        d.ellipse([786 if on else 762, y + 28, 806 if on else 782, y + 48], fill="white")
    for k, (t, c) in enumerate([("Save", (37, 99, 235)), ("Cancel", (229, 231, 235))]):
        x = W - 260 + 120 * k
        d.rounded_rectangle([x, H - 90, x + 100, H - 52], 6, fill=c)
        d.text((x + 50, H - 71), t, fill="white" if k == 0 else (31, 41, 55), font=font(15, "DejaVuSans-Bold"), anchor="mm")
    return im


def pixel_art(rng: np.random.Generator) -> Image.Image:
    n, scale = 40, 12                            # a 40x32 sprite sheet, 12x nearest: 480x384
    pal = np.array([(20, 12, 28), (68, 36, 52), (48, 52, 109), (78, 74, 78), (133, 76, 48), (52, 101, 36),
                    (208, 70, 72), (117, 113, 97), (89, 125, 206), (210, 125, 44), (133, 149, 161),
                    (109, 170, 44), (210, 170, 153), (109, 194, 202), (218, 212, 94), (222, 238, 214)], np.uint8)
    idx = np.full((32, n), 2, np.int64)          # night sky
    idx[rng.random((32, n)) < 0.03] = 15         # stars
    ground = 22 + np.round(np.cumsum(rng.integers(-1, 2, n)) / 2).astype(int).clip(-4, 4)
    for x in range(n):
        idx[ground[x]:, x] = 5
        idx[ground[x] + 2:, x] = 4
        idx[ground[x] + 5:, x] = 1
    for c in rng.choice(n - 6, 3, replace=False):   # three trees
        g = ground[c + 2]
        idx[g - 4:g, c + 2] = 4
        idx[g - 9:g - 4, c:c + 5] = 11
        idx[g - 10, c + 1:c + 4] = 11
    hero = np.array([[0, 6, 6, 6, 0], [6, 12, 12, 12, 6], [0, 12, 0, 12, 0], [8, 8, 8, 8, 8],
                     [0, 8, 8, 8, 0], [0, 3, 0, 3, 0]])
    x0 = n // 2
    g = ground[x0:x0 + 5].min()
    m = hero > 0
    idx[g - 6:g, x0:x0 + 5][m] = hero[m]
    img = pal[idx].repeat(scale, 0).repeat(scale, 1)
    return Image.fromarray(img, "RGB")


def table(rng: np.random.Generator) -> Image.Image:
    W, H = 900, 600
    im = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(im)
    cols = ["Item", "Region", "Units", "Price", "Total"]
    xs = [20, 260, 460, 600, 740, W - 20]
    d.rectangle([20, 20, W - 20, 56], fill=(55, 65, 81))
    for c, x in zip(cols, xs):
        d.text((x + 10, 38), c, fill="white", font=font(15, "DejaVuSans-Bold"), anchor="lm")
    f = font(14)
    for r in range(15):
        y = 56 + 34 * r
        if r % 2:
            d.rectangle([20, y, W - 20, y + 34], fill=(243, 244, 246))
        u, p = int(rng.integers(1, 500)), float(rng.uniform(1, 99))
        cells = [words(rng, 2).title(), ["North", "South", "East", "West"][int(rng.integers(4))],
                 f"{u}", f"{p:.2f}", f"{u * p:,.2f}"]
        for k, (c, x) in enumerate(zip(cells, xs)):
            if k >= 2:
                d.text((xs[k + 1] - 12, y + 17), c, fill=(17, 24, 39), font=f, anchor="rm")
            else:
                d.text((x + 10, y + 17), c, fill=(17, 24, 39), font=f, anchor="lm")
        d.line([(20, y + 34), (W - 20, y + 34)], fill=(209, 213, 219))
    for x in xs:
        d.line([(x, 20), (x, 56 + 34 * 15)], fill=(209, 213, 219))
    return im


def gradient(W: int, H: int, c0, c1, angle: float) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    t = (xx * math.cos(angle) + yy * math.sin(angle))
    t = (t - t.min()) / (t.max() - t.min())
    return (np.array(c0, float) * (1 - t[..., None]) + np.array(c1, float) * t[..., None])


def wallpaper_waves(rng: np.random.Generator) -> Image.Image:
    W, H = 1200, 800
    base = gradient(W, H, (30, 20, 80), (230, 90, 120), rng.uniform(0.3, 1.2))
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    for k in range(4):                           # soft translucent wave bands
        ph, fr, amp = rng.uniform(0, 6.28), rng.uniform(0.004, 0.009), rng.uniform(40, 90)
        edge = H * (0.35 + 0.15 * k) + amp * np.sin(xx * fr + ph)
        a = 0.18 / (1 + np.exp(-(yy - edge) / 3.0))   # anti-aliased edge
        base = base * (1 - a[..., None]) + np.array([255, 240, 230], float) * a[..., None]
    for _ in range(6):                           # glowing circles
        cx, cy, r = rng.uniform(0, W), rng.uniform(0, H * 0.6), rng.uniform(30, 120)
        dist = np.hypot(xx - cx, yy - cy)
        a = 0.25 * np.clip((r - dist) / 2.0 + 0.5, 0, 1)
        base = base * (1 - a[..., None]) + 255 * a[..., None]
    return Image.fromarray(np.round(base).clip(0, 255).astype(np.uint8), "RGB")


def wallpaper_geometric(rng: np.random.Generator) -> Image.Image:
    W, H, S = 1000, 700, 2
    yy, xx = np.mgrid[0:H * S, 0:W * S].astype(np.float64)
    r = np.hypot(xx - W * S * 0.7, yy - H * S * 0.3) / (W * S)
    base = np.array((12, 74, 110), float) * (1 - r[..., None]).clip(0, 1) + np.array((4, 20, 40), float) * r[..., None].clip(0, 1)
    im = Image.fromarray(np.round(base).clip(0, 255).astype(np.uint8), "RGB")
    over = Image.new("RGBA", im.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(over)
    for _ in range(14):                          # translucent triangles and hexagons
        cx, cy, rad = rng.uniform(0, W * S), rng.uniform(0, H * S), rng.uniform(60, 260) * S / 2
        k = int(rng.choice([3, 6]))
        rot = rng.uniform(0, 2 * math.pi)
        pts = [(cx + rad * math.cos(rot + 2 * math.pi * j / k), cy + rad * math.sin(rot + 2 * math.pi * j / k)) for j in range(k)]
        c = tuple(int(v) for v in rng.integers(60, 255, 3))
        d.polygon(pts, fill=c + (int(rng.integers(40, 110)),))
    im = Image.alpha_composite(im.convert("RGBA"), over).convert("RGB")
    return im.resize((W, H), Image.Resampling.LANCZOS)


def arrow(d: Draw, a: tuple[float, float], b: tuple[float, float], c=(55, 65, 81)) -> None:
    d.line([a, b], fill=c, width=2)
    ang = math.atan2(b[1] - a[1], b[0] - a[0])
    p = [b, (b[0] - 12 * math.cos(ang - 0.4), b[1] - 12 * math.sin(ang - 0.4)),
         (b[0] - 12 * math.cos(ang + 0.4), b[1] - 12 * math.sin(ang + 0.4))]
    d.polygon(p, fill=c)


def diagram(rng: np.random.Generator) -> Image.Image:
    W, H = 900, 600
    im = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(im)
    names = ["Encoder", "Latents", "Prior", "Decoder", "rANS", "Bitstream", "Pixels", "Posterior"]
    pos = [(120, 120), (450, 120), (780, 120), (450, 300), (780, 300), (780, 480), (120, 300), (120, 480)]
    cols = palette(rng, 8)
    for i, j in [(6, 0), (0, 1), (2, 1), (1, 3), (3, 4), (4, 5), (0, 7), (7, 4), (3, 6)]:
        (ax, ay), (bx, by) = pos[i], pos[j]
        L = math.hypot(bx - ax, by - ay)
        ux, uy = (bx - ax) / L, (by - ay) / L
        arrow(d, (ax + ux * 80, ay + uy * 40), (bx - ux * 80, by - uy * 40))
    for (x, y), n, c in zip(pos, names, cols):
        d.rounded_rectangle([x - 75, y - 32, x + 75, y + 32], 12, fill=tuple(int(255 - (255 - v) * 0.25) for v in c), outline=c, width=3)
        d.text((x, y), n, fill=(17, 24, 39), font=font(16, "DejaVuSans-Bold"), anchor="mm")
    d.text((W // 2, 560), "Figure 1: " + words(rng, 6), fill=(75, 85, 99), font=font(14, "DejaVuSerif-Italic"), anchor="mm")
    return im


def terminal(rng: np.random.Generator) -> Image.Image:
    W, H = 960, 600
    im = Image.new("RGB", (W, H), (30, 30, 30))
    d = ImageDraw.Draw(im)
    d.rectangle([0, 0, W, 28], fill=(60, 60, 60))
    for k, c in enumerate([(255, 95, 86), (255, 189, 46), (39, 201, 63)]):
        d.ellipse([12 + 20 * k, 8, 24 + 20 * k, 20], fill=c)
    d.text((W // 2, 14), "user@host: ~/vlaecodec", fill=(200, 200, 200), font=font(13), anchor="mm")
    f = font(14, "DejaVuSansMono")
    y = 38
    while y < H - 20:
        kind = rng.random()
        if kind < 0.25:
            d.text((10, y), "$ ", fill=(80, 250, 123), font=f)
            d.text((30, y), "python -m vlaecodec " + words(rng, int(rng.integers(2, 6))), fill=(240, 240, 240), font=f)
        elif kind < 0.4:
            d.text((10, y), f"-rw-r--r-- 1 user user {int(rng.integers(100, 99999)):>6} Dec  5 {words(rng, 1)}.png",
                   fill=(139, 233, 253), font=f)
        else:
            d.text((10, y), f"[{rng.uniform(0, 99):6.2f}s] " + words(rng, int(rng.integers(3, 10))),
                   fill=(220, 220, 220) if kind < 0.9 else (255, 121, 198), font=f)
        y += 19
    return im


def map_picture(rng: np.random.Generator) -> Image.Image:
    W, H = 800, 600
    n = 14
    seeds = rng.uniform(0, 1, (n, 2)) * (W, H)
    yy, xx = np.mgrid[0:H, 0:W]
    dist = (xx[..., None] - seeds[:, 0]) ** 2 + (yy[..., None] - seeds[:, 1]) ** 2
    region = dist.argmin(-1)
    land = np.array([(200, 230, 180), (236, 226, 198), (216, 236, 200), (245, 240, 220), (190, 220, 170)], np.uint8)
    img = land[region % len(land)]
    water = np.hypot(xx - W * 0.15, yy - H * 0.85) < 140
    img[water] = (170, 210, 240)
    im = Image.fromarray(img, "RGB")
    d = ImageDraw.Draw(im)
    river = [(0, 120)]
    for k in range(1, 11):
        river.append((80 * k, river[-1][1] + float(rng.normal(15, 25))))
    d.line(river, fill=(170, 210, 240), width=9)
    for _ in range(6):                           # roads
        a, b = seeds[rng.choice(n, 2, replace=False)]
        d.line([tuple(a), tuple(b)], fill=(255, 255, 255), width=7)
        d.line([tuple(a), tuple(b)], fill=(250, 200, 90), width=4)
    for k in range(5):
        x, y = seeds[k]
        d.ellipse([x - 5, y - 5, x + 5, y + 5], fill=(60, 60, 60))
        d.text((x + 8, y - 8), words(rng, 1).title() + "ton", fill=(40, 40, 40), font=font(13, "DejaVuSans-Bold"))
    return im


def logo(rng: np.random.Generator) -> Image.Image:
    W, H, S = 400, 300, 4
    im = Image.new("RGB", (W * S, H * S), "white")
    d = ImageDraw.Draw(im)
    c1, c2 = palette(rng, 2)
    cx, cy = 200 * S, 110 * S
    d.ellipse([cx - 70 * S, cy - 70 * S, cx + 70 * S, cy + 70 * S], fill=c1)
    d.polygon([(cx - 40 * S, cy + 40 * S), (cx, cy - 50 * S), (cx + 40 * S, cy + 40 * S)], fill="white")
    d.ellipse([cx - 16 * S, cy + 2 * S, cx + 16 * S, cy + 34 * S], fill=c2)
    d.text((cx, 230 * S), "VLAE codec", fill=(30, 30, 30), font=font(40 * S, "DejaVuSans-Bold"), anchor="mm")
    d.text((cx, 272 * S), "lossless, learned", fill=c1, font=font(16 * S), anchor="mm")
    return im.resize((W, H), Image.Resampling.LANCZOS)


GRAPHICS: list[tuple[str, Callable[[np.random.Generator], Image.Image]]] = [
    ("bar_chart", bar_chart), ("line_chart", line_chart), ("pie_chart", pie_chart), ("ui_mock", ui_mock),
    ("pixel_art", pixel_art), ("table", table), ("wallpaper_waves", wallpaper_waves),
    ("wallpaper_geometric", wallpaper_geometric), ("diagram", diagram), ("terminal", terminal),
    ("map", map_picture), ("logo", logo)]


def graphics(seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """The 12 RGB graphics, (name, H x W x 3 uint8); each drawn from its own stream."""
    out = []
    for k, (name, fn) in enumerate(GRAPHICS):
        im = fn(np.random.default_rng([seed, k]))
        out.append((name, np.asarray(im.convert("RGB")).copy()))
    return out


def gray(seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """The same 12 graphics as 8-bit gray (H x W uint8)."""
    return [(n, np.asarray(Image.fromarray(a, "RGB").convert("L")).copy()) for n, a in graphics(seed)]


# ----------------------------------------------------------------------- documents

def _page(W: int, H: int) -> tuple[Image.Image, Draw]:
    im = Image.new("L", (W, H), 255)
    return im, ImageDraw.Draw(im)


def _binary(im: Image.Image, threshold: int = 128) -> np.ndarray:
    return (np.asarray(im.convert("L")) < threshold).astype(np.uint8)


def _text_page(rng, W, H, face, size, columns=1):
    im, d = _page(W, H)
    f = font(size, face)
    d.text((60, 50), words(rng, 4).title(), fill=0, font=font(int(size * 1.6), face + "-Bold" if "Mono" not in face else face))
    colw = (W - 120 - 30 * (columns - 1)) // columns
    for c in range(columns):
        x0, y = 60 + c * (colw + 30), 50 + int(size * 3.2)
        while y < H - 60:
            line = ""
            while True:
                w = words(rng, 1)
                if d.textlength(line + " " + w, font=f) > colw:
                    break
                line = (line + " " + w).strip()
            if rng.random() < 0.08:              # paragraph end
                line = line[: len(line) // 2]
                y += size // 2
            d.text((x0, y), line, fill=0, font=f)
            y += int(size * 1.35)
    return _binary(im)


def _code(rng, W=900, H=1100):
    im, d = _page(W, H)
    f = font(15, "DejaVuSansMono")
    y, depth = 40, 0
    for n in range(1, 200):
        if y > H - 40:
            break
        k = rng.random()
        if k < 0.15 and depth < 4:
            s = f"def {words(rng, 1)}_{words(rng, 1)}(x, y={int(rng.integers(9))}):"
            nxt = depth + 1
        elif k < 0.25 and depth > 0:
            s, nxt = f"return {words(rng, 1)} + {int(rng.integers(100))}", depth - 1
        else:
            s, nxt = f"{words(rng, 1)} = {words(rng, 1)}({words(rng, 1)}, {int(rng.integers(256))})", depth
        d.text((20, y), f"{n:4d}", fill=0, font=f)
        d.text((80 + 32 * depth, y), s, fill=0, font=f)
        depth, y = nxt, y + 19
    return _binary(im)


def _table_doc(rng, W=1000, H=700):
    im, d = _page(W, H)
    f = font(14)
    rows, cols = 18, 5
    xs = np.linspace(40, W - 40, cols + 1)
    ys = np.linspace(40, H - 40, rows + 1)
    for x in xs:
        d.line([(x, ys[0]), (x, ys[-1])], fill=0, width=1)
    for k, y in enumerate(ys):
        d.line([(xs[0], y), (xs[-1], y)], fill=0, width=2 if k < 2 else 1)
    for r in range(rows):
        for c in range(cols):
            t = words(rng, 1).title() if c == 0 or r == 0 else f"{rng.uniform(0, 1e4):,.1f}"
            d.text((xs[c] + 8, (ys[r] + ys[r + 1]) / 2), t, fill=0, font=font(14, "DejaVuSans-Bold") if r == 0 else f, anchor="lm")
    return _binary(im)


def _form(rng, W=850, H=1100):
    im, d = _page(W, H)
    d.text((W // 2, 60), "APPLICATION FORM", fill=0, font=font(28, "DejaVuSerif-Bold"), anchor="mm")
    f = font(16, "DejaVuSerif")
    y = 130
    while y < H - 120:
        d.text((60, y), words(rng, 2).title() + ":", fill=0, font=f)
        d.line([(260, y + 20), (W - 60, y + 20)], fill=0, width=1)
        if rng.random() < 0.5:
            for j in range(int(rng.integers(2, 5))):
                x = 280 + 130 * j
                d.rectangle([x, y + 40, x + 16, y + 56], outline=0, width=2)
                if rng.random() < 0.4:
                    d.line([(x + 3, y + 48), (x + 7, y + 53), (x + 14, y + 42)], fill=0, width=2)
                d.text((x + 24, y + 38), words(rng, 1), fill=0, font=font(14))
            y += 40
        y += 60
    d.rectangle([60, H - 100, W - 60, H - 40], outline=0, width=2)
    d.text((70, H - 95), "Signature", fill=0, font=font(12))
    return _binary(im)


def _strokes(rng, W=900, H=600):
    im, d = _page(W, H)
    for line in range(6):                        # handwriting-like: wobbly loops along lines
        y0 = 70 + 90 * line
        x = 40.0
        while x < W - 80:
            n = int(rng.integers(3, 8))
            t = np.linspace(0, n * 2 * math.pi, n * 12)
            px = x + t * rng.uniform(2.0, 3.2) + 9 * np.sin(t * 0.5 + rng.uniform(0, 3))
            py = y0 + 14 * np.sin(t + rng.uniform(0, 3)) * rng.uniform(0.6, 1.2) + 3 * np.cos(2.3 * t)
            d.line(list(zip(px, py)), fill=0, width=3, joint="curve")
            x = px.max() + rng.uniform(18, 35)
    return _binary(im)


def _floor_plan(rng, W=1000, H=750):
    im, d = _page(W, H)
    d.rectangle([50, 50, W - 50, H - 50], outline=0, width=8)
    xs = sorted(rng.uniform(200, W - 200, 2))
    ys = [float(rng.uniform(250, H - 250))]
    for x in xs:
        d.line([(x, 50), (x, H - 50)], fill=0, width=5)
    d.line([(50, ys[0]), (W - 50, ys[0])], fill=0, width=5)
    for x in xs:                                 # doors: gaps and swing arcs
        y = ys[0] + 60
        d.rectangle([x - 4, y, x + 4, y + 60], fill=255)
        d.arc([x - 60, y - 0, x + 60, y + 120], 270, 360, fill=0, width=2)
    f = font(16)
    cells = [(50, 50, xs[0], ys[0]), (xs[0], 50, xs[1], ys[0]), (xs[1], 50, W - 50, ys[0]),
             (50, ys[0], xs[0], H - 50), (xs[0], ys[0], xs[1], H - 50), (xs[1], ys[0], W - 50, H - 50)]
    for (a, b, c, e), n in zip(cells, ["Kitchen", "Living", "Bed 1", "Bath", "Hall", "Bed 2"]):
        d.text(((a + c) / 2, (b + e) / 2), n, fill=0, font=f, anchor="mm")
        d.text(((a + c) / 2, (b + e) / 2 + 22), f"{(c - a) / 100:.1f} x {(e - b) / 100:.1f} m", fill=0, font=font(12), anchor="mm")
    for k in range(0, int(W - 100), 100):       # dimension ticks
        d.line([(50 + k, 25), (50 + k, 38)], fill=0, width=1)
    d.line([(50, 32), (W - 50, 32)], fill=0, width=1)
    return _binary(im)


def _noisy_scan(rng, W=850, H=1100):
    page = _text_page(rng, W, H, "DejaVuSerif", 16)
    im = Image.fromarray(((1 - page) * 255).astype(np.uint8), "L")
    im = im.rotate(float(rng.uniform(1.0, 2.5)), resample=Image.Resampling.BILINEAR, fillcolor=255)
    im = im.filter(ImageFilter.GaussianBlur(0.8))
    a = np.asarray(im).astype(np.float64) + rng.normal(0, 28, (H, W))
    a += np.linspace(0, 25, W)[None, :]          # uneven lighting
    out = (a < 140).astype(np.uint8)
    out[rng.random((H, W)) < 0.002] = 1          # specks
    return out


def _qr_like(rng, modules=41, scale=8, border=4):
    m = (rng.random((modules, modules)) < 0.5).astype(np.uint8)
    for r, c in [(0, 0), (0, modules - 7), (modules - 7, 0)]:   # finder patterns
        m[r:r + 7, c:c + 7] = 1
        m[r + 1:r + 6, c + 1:c + 6] = 0
        m[r + 2:r + 5, c + 2:c + 5] = 1
    m[6, 8:-8] = np.arange(modules - 16) % 2 == 0   # timing patterns
    m[8:-8, 6] = np.arange(modules - 16) % 2 == 0
    m = np.pad(m, border)
    return m.repeat(scale, 0).repeat(scale, 1)


def own_documents(seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """10 binary documents (H x W uint8, 1 = black), used when bench/binary_docs.py is absent."""
    makers: list[tuple[str, Callable[[np.random.Generator], np.ndarray]]] = [
        ("page_serif", lambda r: _text_page(r, 850, 1100, "DejaVuSerif", 18)),
        ("page_sans_small", lambda r: _text_page(r, 850, 1100, "DejaVuSans", 12, columns=2)),
        ("page_mono_large", lambda r: _text_page(r, 700, 900, "DejaVuSansMono", 24)),
        ("code", _code), ("table", _table_doc), ("form", _form), ("strokes", _strokes),
        ("floor_plan", _floor_plan), ("noisy_scan", _noisy_scan), ("qr_like", _qr_like)]
    return [(n, fn(np.random.default_rng([seed, 100 + k]))) for k, (n, fn) in enumerate(makers)]


def documents(seed: int = 0) -> tuple[list[tuple[str, np.ndarray]], str]:
    """(documents, where they came from): bench/binary_docs.py's ``make_documents`` when that
    file exists, else ``own_documents``."""
    here = Path(__file__).resolve().parent
    if (here / "binary_docs.py").exists():
        sys.path.insert(0, str(here))
        try:
            import binary_docs                   # noqa: the other helper's generator
        finally:
            sys.path.remove(str(here))
        docs = [(n, (np.asarray(a) > 0).astype(np.uint8)) for n, a in binary_docs.make_documents(seed)]
        return docs, "bench/binary_docs.py make_documents"
    return own_documents(seed), "bench/ood_images.py own_documents"


def write(folder: Path, seed: int = 0, sets=SETS, limit: int | None = None) -> dict[str, list[Path]]:
    """Write the chosen sets as PNGs under folder/SET/; {set: [paths]} in generation order."""
    out: dict[str, list[Path]] = {}
    for s in sets:
        if s == "rgb":
            items, mode = graphics(seed), "RGB"
        elif s == "gray":
            items, mode = gray(seed), "L"
        elif s == "binary":
            items, mode = documents(seed)[0], "1"
        else:
            raise ValueError(f"unknown set {s!r} (one of {', '.join(SETS)})")
        d = folder / s
        d.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, a in items[:limit]:
            p = d / f"{name}.png"
            if mode == "1":
                Image.fromarray(a == 0).save(p)     # 1 = ink = black: False in mode "1"
            else:
                Image.fromarray(a, mode).save(p)
            paths.append(p)
        out[s] = paths
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sets", default=",".join(SETS))
    p.add_argument("--limit", type=int)
    a = p.parse_args(argv)
    for s, paths in write(Path(a.out), a.seed, a.sets.split(","), a.limit).items():
        print(f"{s}: {len(paths)} images in {Path(a.out) / s}")


if __name__ == "__main__":
    main()
