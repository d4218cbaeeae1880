"""A table file from someone else is data: how it is written must not size pipekit's memory or disk use beyond
what its rows need. A CSV of millions of blank lines took about 270 bytes of memory per line (a Python tuple each,
kept in a cache), so a 33 KB zip of them used 8 GB; a compressed CSV was inflated to a temporary file without
bound (a zip bomb filled the disk). pandas reads the first in 0.3 s at about 100 MB."""
from __future__ import annotations

import gzip
import subprocess
import sys
import tempfile
import textwrap
import time
import zipfile
from pathlib import Path

import pytest

from pipekit.core.errors import DataError
from pipekit.data.items import read_table
from pipekit.tabular import Tabular

pytestmark = pytest.mark.data


def test_sec_millions_of_blank_lines_cost_bytes_not_objects(tmp_path):
    f = tmp_path / "blank.csv"
    f.write_bytes(b"a,b\n1,2\n" + b"\n" * 4_000_000 + b"3,4\n")
    script = textwrap.dedent(f"""
        import resource, warnings
        warnings.simplefilter("ignore")
        from pipekit.data.items import read_table
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rows = read_table({str(f)!r}).rows()
        print(rows, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows, grown_mb = out.stdout.strip().rsplit(" ", 1)
    assert rows == "[(1, 2), (3, 4)]"
    assert int(grown_mb) < 500  # 1,035 MB before (4M blank lines), about 180 MB now


@pytest.mark.parametrize("kind", ["zip", "gzip"])
def test_sec_a_compressed_csv_that_inflates_without_bound_is_stopped(tmp_path, kind, monkeypatch):
    body = b"a,b\n" + b"1,2\n" * 30_000_000  # 120 MB of one repeated line: about 1000:1
    f = tmp_path / ("bomb.zip" if kind == "zip" else "bomb.csv.gz")
    if kind == "zip":
        with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("x.csv", body)
    else:
        f.write_bytes(gzip.compress(body, compresslevel=9))
    # a temporary folder of this test's own: other processes (test workers) unpack CSVs in the shared one meanwhile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    temps = set(Path(tempfile.gettempdir()).glob("pipekit_csv_*"))
    start, began = time.process_time(), time.perf_counter()  # CPU time: a busy machine does not count
    for read in (lambda: read_table(f), lambda: Tabular(f, cat_names=[], cont_names=["a"], y_names="b")):
        with pytest.raises(DataError, match=r"inflates to more than 100 times its .* bytes, as no table does"):
            read()
    assert time.process_time() - start < 10 and time.perf_counter() - began < 160  # and no long wait
    assert set(Path(tempfile.gettempdir()).glob("pipekit_csv_*")) <= temps  # its inflated part is removed
    # a real table compresses far less, and is read whole
    real = tmp_path / "real.csv.gz"
    real.write_bytes(gzip.compress(b"a,b\n" + b"".join(b"%d,%d\n" % (i, i * 7 % 13) for i in range(100_000))))
    assert read_table(real).shape == (100_000, 2)
