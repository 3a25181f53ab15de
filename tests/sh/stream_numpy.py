"""NumPy side of the stream interoperability test.

read_fz() below is the reader documented in fz-stream(5): a stream is .npy arrays one after
another; a leading 1-D uint8 array holding JSON text is the metadata. It works on files and
on pipes (np.load needs a seekable file, so this reads headers and bytes itself).
"""
import json
import sys

import numpy as np
from numpy.lib import format as npf


# Verbatim from the EXAMPLES of man/fz-stream.5.
def read_fz(f):
    """Yield (metadata, rows) for each row chunk of stream f."""
    meta = {}
    while f.peek(1):
        v = npf.read_magic(f)
        shape, _, dt = (npf.read_array_header_1_0 if v == (1, 0)
                        else npf.read_array_header_2_0)(f)
        a = np.frombuffer(f.read(int(np.prod(shape)) * dt.itemsize),
                          dt).reshape(shape)
        if a.dtype == np.uint8 and a.ndim == 1 and a[:1].tobytes() == b"{":
            meta = json.loads(a.tobytes()); continue
        yield meta, a


def expected_rows(n):
    # The rows test_stream writes: see fill_row() in tests/unit/test_stream.c.
    i = np.arange(n)
    x = (i[:, None] * 0.5 + np.arange(6)[None, :]).astype(np.float32).reshape(n, 1, 2, 3)
    return i, x


def check_fz_written(f):
    chunks = list(read_fz(f))
    meta = chunks[0][0]
    assert meta["classes"] == ["a", "b"], meta
    assert meta["note"] == "caf\u00e9", meta
    rows = np.concatenate([c for _, c in chunks])
    assert [len(c) for _, c in chunks] == [5, 5, 5, 5, 3], [len(c) for _, c in chunks]
    assert rows.dtype.names == ("id", "label", "x", "path", "u"), rows.dtype.names
    assert rows.dtype["x"].shape == (1, 2, 3)
    i, x = expected_rows(23)
    assert (rows["id"] == 1000 + i).all()
    assert (rows["label"] == i % 10 - 1).all()
    assert np.array_equal(rows["x"], x)
    assert rows["path"][7] == b"img7.png", rows["path"][7]
    assert (rows["u"] == i).all()


def write_numpy(path):
    """Several structured arrays saved one after another, metadata first."""
    dt = np.dtype([("id", "<u8"), ("label", "<i4"), ("x", "<f4", (3,)), ("name", "S8")])
    rng = np.random.default_rng(3)
    parts = []
    with open(path, "wb") as f:
        np.save(f, np.frombuffer(json.dumps({"classes": ["no", "yes"]}).encode(), np.uint8))
        for k, n in enumerate([4, 0, 7, 1]):
            a = np.zeros(n, dt)
            a["id"] = np.arange(n) + 100 * k
            a["label"] = k % 2
            a["x"] = rng.standard_normal((n, 3))
            a["name"] = b"n%d" % k
            np.save(f, a)
            parts.append(a)
    allrows = np.concatenate(parts)
    x = allrows["x"].astype(np.float64)
    print(len(allrows), "%.6g %.6g %.6g" % (x.min(), x.max(), x.mean()))


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "read-file":
        with open(sys.argv[2], "rb") as f:
            check_fz_written(f)
        # np.load also works chunk by chunk on a seekable file.
        with open(sys.argv[2], "rb") as f:
            arrays = []
            while f.peek(1):
                arrays.append(np.load(f))
        assert len(arrays) == 6 and arrays[0].dtype == np.uint8
    elif mode == "read-pipe":
        check_fz_written(sys.stdin.buffer)
    elif mode == "write":
        write_numpy(sys.argv[2])
    print("ok")
