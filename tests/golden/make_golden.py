"""Write the golden .vlae files (run once, when a model is first shipped; never again).

    python tests/golden/make_golden.py

Every later version of vlaecodec must decode these files to the committed pixels and
names (tests/test_golden.py): this is what catches a numpy, constriction or Python
upgrade -- or a change of ours -- that would make old files unreadable.
"""
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def main() -> None:
    sys.path.insert(0, str(REPO))
    import vlaecodec
    from vlaecodec.images import load_png

    paths = sorted((REPO / "samples" / "digits").glob("*.png"))
    images, modes = zip(*(load_png(p.read_bytes(), str(p)) for p in paths))
    names = [p.name for p in paths]
    for model in ("vlae-mnist-v1", "vlae-mnist-factorized-v1", "vlae-mnist-v2"):
        loaded = vlaecodec.load_model(model)
        files = {f"{model}-digits16.vlae": vlaecodec.compress(list(images), loaded, names=names, modes=list(modes)),
                 f"{model}-single.vlae": vlaecodec.compress([images[3]], loaded, modes=[modes[3]])}
        if loaded.net.lossy_levels:   # lossy files: the redrawn digits are committed as PNGs
            files[f"{model}-lossy-digits16.vlae"] = vlaecodec.compress(list(images), loaded, names=names,
                                                                        modes=list(modes), lossy=True)
            # Each draw family at least once (the first file above predates the encoder's pick).
            files[f"{model}-lossy-pick16-digits16.vlae"] = vlaecodec.compress(
                list(images), loaded, names=names, modes=list(modes), lossy=True, rate=5, draw=12)
        write(files, names, modes)
    # 8-bit models, on their sample images (8-bit grayscale PNGs).
    from vlaecodec.images import read_image
    for model, folder in (("vlae-mnist8-v1", "mnist8"), ("vlae-fashion-mnist-v1", "fashion")):
        paths = sorted((REPO / "samples" / folder).glob("*.png"))
        gray = [read_image(p.read_bytes(), str(p)).gray for p in paths]
        gnames = [p.name for p in paths]
        loaded = vlaecodec.load_model(model)
        write({f"{model}-{folder}16.vlae": vlaecodec.compress(gray, loaded, names=gnames),
               f"{model}-single.vlae": vlaecodec.compress([gray[3]], loaded)}, gnames, ["L"] * len(gray))


def write(files, names, modes) -> None:
    """Write the files that do not exist yet (and a lossy file's redrawn digits)."""
    import vlaecodec
    for name, blob in files.items():
        out = HERE / name
        if out.exists():
            print(f"{out.name} exists; golden files are never rewritten")
            continue
        out.write_bytes(blob)
        print(f"wrote {out.name} ({len(blob)} bytes)")
        if "-lossy-" in name:
            from vlaecodec.images import png_bytes
            folder = HERE / out.stem
            folder.mkdir(exist_ok=True)
            for im, nm, md in zip(vlaecodec.decompress(blob).images, names, modes):
                (folder / nm).write_bytes(png_bytes(im, md))


if __name__ == "__main__":
    main()
