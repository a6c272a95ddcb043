"""Rendered binary (1-bit) documents for tuning and testing the bilevel context coder.

``make_documents(seed)`` returns ``[(name, array)]``: uint8 arrays of 0/1 (1 = black ink),
deterministic for a seed (numpy's default_rng and Pillow drawing with the DejaVu fonts that
Debian installs; other fonts are used only if present, so the set is the same wherever
DejaVu is). The kinds: text pages in several fonts and sizes, source code, a ruled table, a
form with boxes, pen strokes, a floor plan, a noisy rotated scan and a QR-like module grid.

    python bench/binary_docs.py OUT_DIR [--seed N]     # writes OUT_DIR/<name>.png (mode 1)

No image here comes from any wallpaper or photo package: everything is drawn.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIR = "/usr/share/fonts/truetype/dejavu"
FONTS = {
    "sans": "DejaVuSans.ttf", "serif": "DejaVuSerif.ttf", "mono": "DejaVuSansMono.ttf",
    "sans-bold": "DejaVuSans-Bold.ttf", "serif-italic": "DejaVuSerif-Italic.ttf",
    "condensed": "DejaVuSansCondensed.ttf", "serif-condensed": "DejaVuSerifCondensed.ttf",
}

WORDS = ("the of and to in is that for it as was with be by on not he this are or his from at which "
         "but have an they you were her she there been one all we their has would when if so no will "
         "more can who out other about into time them then some only could these two may first any new "
         "like our now over such very after most also made many before must well back through where much "
         "should years between each just those people how state because under system three while last "
         "might great never both around another same however world still being public during number "
         "without against small large often place given several part water house point found within "
         "image pixel coding entropy context model binary document table figure section result value "
         "compression lossless arithmetic probability estimate adaptive template stripe resolution "
         "measurement committee report annual budget meeting council agreement proposal").split()

CODE_WORDS = ("def return if else for while in import from class self None True False and or not "
              "len range np array int float print yield with as try except raise lambda").split()


def _font(kind: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(os.path.join(FONT_DIR, FONTS[kind]), size)


def _ink(gray: Image.Image, threshold: int = 128) -> np.ndarray:
    """A white page with black ink (mode L) -> 0/1 array, 1 = ink."""
    return (np.asarray(gray) < threshold).astype(np.uint8)


def _sentence(rng, n: int) -> str:
    words = [WORDS[int(i)] for i in rng.zipf(1.3, n) % len(WORDS)]
    s = " ".join(words)
    return s[:1].upper() + s[1:] + rng.choice([".", ".", ".", ",", ";", ":"])


def _wrap(draw, text: str, font, width: int) -> list[str]:
    lines, cur = [], ""
    for w in text.split():
        t = (cur + " " + w).strip()
        if draw.textlength(t, font=font) > width and cur:
            lines.append(cur)
            cur = w
        else:
            cur = t
    if cur:
        lines.append(cur)
    return lines


def text_page(rng, w: int, h: int, font: str, size: int, columns: int = 1, heading: bool = True) -> np.ndarray:
    im = Image.new("L", (w, h), 255)
    d = ImageDraw.Draw(im)
    f = _font(font, size)
    margin = w // 12
    y = margin
    if heading:
        hf = _font("sans-bold", int(size * 1.8))
        d.text((margin, y), _sentence(rng, 5)[:-1].title(), font=hf, fill=0)
        y += int(size * 3.2)
    gap = w // 30
    colw = (w - 2 * margin - (columns - 1) * gap) // columns
    top = y
    for c in range(columns):
        x, y = margin + c * (colw + gap), top
        while y < h - margin - size:
            para = " ".join(_sentence(rng, int(rng.integers(6, 20))) for _ in range(int(rng.integers(2, 6))))
            for line in _wrap(d, para, f, colw):
                if y >= h - margin - size:
                    break
                d.text((x, y), line, font=f, fill=0)
                y += int(size * 1.35)
            y += int(size * 0.8)
    return _ink(im)


def code_page(rng, w: int, h: int, size: int) -> np.ndarray:
    im = Image.new("L", (w, h), 255)
    d = ImageDraw.Draw(im)
    f = _font("mono", size)
    margin, y, indent = w // 16, w // 16, 0
    while y < h - margin - size:
        if rng.random() < 0.12:
            line = ""
            indent = max(0, indent - int(rng.integers(0, 2)))
        else:
            n = int(rng.integers(2, 9))
            toks = [CODE_WORDS[int(i) % len(CODE_WORDS)] if rng.random() < 0.4 else WORDS[int(i)] for i in rng.integers(0, 40, n)]
            line = " ".join(toks)
            if rng.random() < 0.3:
                line = f"{toks[0]} = {toks[-1]}({', '.join(toks[1:-1])})"
            if rng.random() < 0.25:
                line += f"  # {_sentence(rng, 4)}"
            if rng.random() < 0.2:
                line = "def " + toks[0] + "(" + ", ".join(toks[1:3]) + "):"
        d.text((margin + indent * 4 * size * 0.6, y), "    " * 0 + line, font=f, fill=0)
        if line.endswith(":"):
            indent = min(indent + 1, 5)
        y += int(size * 1.3)
    return _ink(im)


def table_page(rng, w: int, h: int, size: int) -> np.ndarray:
    im = Image.new("L", (w, h), 255)
    d = ImageDraw.Draw(im)
    f, fb = _font("sans", size), _font("sans-bold", size)
    margin = w // 14
    cols = int(rng.integers(4, 8))
    colw = (w - 2 * margin) // cols
    rowh = int(size * 1.9)
    rows = (h - 2 * margin) // rowh
    lw = max(1, size // 10)
    for r in range(rows + 1):
        d.line([(margin, margin + r * rowh), (margin + cols * colw, margin + r * rowh)], fill=0,
               width=lw * (3 if r in (0, 1, rows) else 1))
    for c in range(cols + 1):
        d.line([(margin + c * colw, margin), (margin + c * colw, margin + rows * rowh)], fill=0, width=lw)
    for r in range(rows):
        for c in range(cols):
            if r == 0:
                t, ff = WORDS[int(rng.integers(0, len(WORDS)))].title(), fb
            elif c == 0:
                t, ff = f"{WORDS[int(rng.integers(0, len(WORDS)))]} {r}", f
            else:
                t, ff = f"{rng.normal(1000, 800):,.2f}", f
            tw = d.textlength(t, font=ff)
            x = margin + c * colw + (colw - tw - size // 2 if c else size // 2)
            d.text((x, margin + r * rowh + (rowh - size) // 2), t, font=ff, fill=0)
    return _ink(im)


def form_page(rng, w: int, h: int, size: int) -> np.ndarray:
    im = Image.new("L", (w, h), 255)
    d = ImageDraw.Draw(im)
    f, fb = _font("sans", size), _font("sans-bold", int(size * 1.6))
    margin = w // 12
    d.text((margin, margin), "APPLICATION FORM " + str(int(rng.integers(100, 999))), font=fb, fill=0)
    y = margin + int(size * 3.5)
    while y < h - margin - 3 * size:
        kind = rng.choice(["field", "field", "checks", "box"])
        label = _sentence(rng, int(rng.integers(1, 4)))[:-1]
        if kind == "field":
            d.text((margin, y), label + ":", font=f, fill=0)
            x0 = margin + int(d.textlength(label + ":", font=f)) + size
            nbox = int(rng.integers(8, 24))
            bw = size + size // 3
            for k in range(nbox):
                if x0 + (k + 1) * bw > w - margin:
                    break
                d.rectangle([x0 + k * bw, y - size // 4, x0 + (k + 1) * bw, y + size + size // 4], outline=0, width=2)
            y += int(size * 2.4)
        elif kind == "checks":
            x = margin
            for _ in range(int(rng.integers(2, 5))):
                d.rectangle([x, y, x + size, y + size], outline=0, width=2)
                if rng.random() < 0.4:
                    d.line([(x + 2, y + size // 2), (x + size // 2, y + size - 2), (x + size + 3, y - 4)], fill=0, width=3)
                t = WORDS[int(rng.integers(0, len(WORDS)))]
                d.text((x + int(size * 1.5), y), t, font=f, fill=0)
                x += int(size * 2) + int(d.textlength(t, font=f)) + size * 2
            y += int(size * 2.4)
        else:
            bh = int(size * rng.integers(3, 7))
            d.text((margin, y), label, font=f, fill=0)
            d.rectangle([margin, y + int(size * 1.5), w - margin, y + int(size * 1.5) + bh], outline=0, width=3)
            y += bh + int(size * 3)
    for k in range(int(rng.integers(1, 3))):   # signature lines
        yy = h - margin - k * 3 * size
        d.line([(w // 2, yy), (w - margin, yy)], fill=0, width=2)
        d.text((w // 2, yy + 4), "Signature / date", font=_font("sans", int(size * 0.7)), fill=0)
    return _ink(im)


def strokes_page(rng, w: int, h: int) -> np.ndarray:
    """Handwriting-like pen strokes: smooth random curves in lines of 'words'."""
    im = Image.new("L", (w, h), 255)
    d = ImageDraw.Draw(im)
    margin, lh = w // 14, int(h / 22)
    pen = max(2, w // 500)
    y = margin + lh
    while y < h - margin:
        x = margin + rng.integers(0, 40)
        while x < w - margin - 40:
            n = int(rng.integers(20, 80))
            t = np.cumsum(rng.normal(0, 0.6, n))
            xs = x + np.cumsum(np.abs(rng.normal(lh * 0.08, lh * 0.05, n)))
            ys = y - lh * 0.3 * (np.sin(np.cumsum(rng.normal(0.9, 0.3, n))) + 0.15 * t / (1 + abs(t).max()))
            d.line(list(zip(xs.tolist(), ys.tolist())), fill=0, width=pen, joint="curve")
            x = int(xs[-1]) + int(rng.integers(lh // 3, lh))
        y += lh
    return _ink(im)


def floor_plan(rng, w: int, h: int) -> np.ndarray:
    im = Image.new("L", (w, h), 255)
    d = ImageDraw.Draw(im)
    margin = w // 12
    wall = max(4, w // 150)
    x0, y0, x1, y1 = margin, margin, w - margin, h - margin
    d.rectangle([x0, y0, x1, y1], outline=0, width=2 * wall)
    rooms = [(x0, y0, x1, y1)]
    for _ in range(7):   # split the biggest room
        rooms.sort(key=lambda r: (r[2] - r[0]) * (r[3] - r[1]))
        a, b, c, e = rooms.pop()
        if (c - a) > (e - b):
            s = int(a + (c - a) * rng.uniform(0.35, 0.65))
            d.line([(s, b), (s, e)], fill=0, width=wall)
            door = int(b + (e - b) * rng.uniform(0.2, 0.7))
            d.rectangle([s - wall, door, s + wall, door + 6 * wall], fill=255)
            d.arc([s - 6 * wall, door - 6 * wall, s + 6 * wall, door + 6 * wall], 0, 90, fill=0, width=1)
            rooms += [(a, b, s, e), (s, b, c, e)]
        else:
            s = int(b + (e - b) * rng.uniform(0.35, 0.65))
            d.line([(a, s), (c, s)], fill=0, width=wall)
            door = int(a + (c - a) * rng.uniform(0.2, 0.7))
            d.rectangle([door, s - wall, door + 6 * wall, s + wall], fill=255)
            d.arc([door - 6 * wall, s - 6 * wall, door + 6 * wall, s + 6 * wall], 0, 90, fill=0, width=1)
            rooms += [(a, b, c, s), (a, s, c, e)]
    f = _font("sans", max(10, w // 80))
    for a, b, c, e in rooms:
        t = f"{WORDS[int(rng.integers(0, len(WORDS)))].upper()} {((c - a) * (e - b)) / 4000:.1f} m2"
        d.text(((a + c) // 2 - d.textlength(t, font=f) // 2, (b + e) // 2), t, font=f, fill=0)
        for k in range(int(rng.integers(0, 3))):   # furniture
            fx, fy = int(rng.integers(a + 3 * wall, max(a + 3 * wall + 1, c - 60))), int(rng.integers(b + 3 * wall, max(b + 3 * wall + 1, e - 60)))
            d.rectangle([fx, fy, fx + int(rng.integers(20, 60)), fy + int(rng.integers(20, 60))], outline=0, width=1)
    for k in range(0, x1 - x0, 8):   # a dimension line with ticks
        d.line([(x0 + k, y1 + wall * 3), (x0 + k, y1 + wall * 3 + (8 if k % 80 == 0 else 4))], fill=0, width=1)
    d.line([(x0, y1 + wall * 3), (x1, y1 + wall * 3)], fill=0, width=1)
    return _ink(im)


def noisy_scan(rng, w: int, h: int) -> np.ndarray:
    """A text page rotated by a small angle, blurred and thresholded with noise, plus specks."""
    page = text_page(rng, w, h, "serif", max(12, w // 60))
    im = Image.fromarray((255 - 255 * page).astype(np.uint8))
    im = im.rotate(float(rng.uniform(-3, 3)), resample=Image.BICUBIC, fillcolor=255)
    im = im.filter(ImageFilter.GaussianBlur(0.8))
    a = np.asarray(im).astype(np.float64) + rng.normal(0, 18, (h, w))
    ink = (a < 128).astype(np.uint8)
    specks = rng.random((h, w)) < 0.0008
    ink[specks] ^= 1
    ink[:, : int(rng.integers(5, 25))] = 1   # a dark scanner edge
    return ink


def qr_like(rng, modules: int, scale: int, quiet: int = 4) -> np.ndarray:
    m = (rng.random((modules, modules)) < 0.5).astype(np.uint8)
    finder = np.ones((7, 7), np.uint8)
    finder[1:6, 1:6] = 0
    finder[2:5, 2:5] = 1
    for (r, c) in ((0, 0), (0, modules - 7), (modules - 7, 0)):
        m[r:r + 7, c:c + 7] = finder
        m[max(r - 1, 0):r + 8, c + 7 if c == 0 else c - 1] = 0
        m[r + 7 if r == 0 else r - 1, max(c - 1, 0):c + 8] = 0
    m[6, 8:-8] = np.arange(modules - 16) % 2 == 0
    m[8:-8, 6] = np.arange(modules - 16) % 2 == 0
    m = np.pad(m, quiet)
    return np.kron(m, np.ones((scale, scale), np.uint8))


def make_documents(seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """The training/tuning set: 10 documents, deterministic for ``seed``."""
    rng = np.random.default_rng(seed)
    sub = lambda: np.random.default_rng(rng.integers(1 << 62))  # noqa: E731 - one stream per document
    A4_150 = (1240, 1754)
    return [
        ("text-serif-300dpi", text_page(sub(), 2480, 3508, "serif", 42)),
        ("text-sans-2col", text_page(sub(), *A4_150, "sans", 17, columns=2)),
        ("text-condensed-small", text_page(sub(), 1700, 2200, "serif-condensed", 14)),
        ("code-mono", code_page(sub(), *A4_150, 18)),
        ("table", table_page(sub(), 1600, 1200, 20)),
        ("form", form_page(sub(), *A4_150, 20)),
        ("pen-strokes", strokes_page(sub(), 1400, 1000)),
        ("floor-plan", floor_plan(sub(), 1600, 1200)),
        ("noisy-rotated-scan", noisy_scan(sub(), *A4_150)),
        ("qr-like", qr_like(sub(), 41, 12)),
    ]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, img in make_documents(a.seed):
        Image.fromarray(img == 0).save(out / f"{name}.png")   # mode 1: True = white paper
        print(f"{name}: {img.shape[1]}x{img.shape[0]}, {img.mean():.4f} ink")


if __name__ == "__main__":
    main()
