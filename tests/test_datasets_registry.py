"""The dataset registry: local lookup, and the real download/extract/verify path on a local archive."""
import tarfile

import numpy as np
import pytest

import pipekit.datasets as D
from pipekit.data.external import Checksum, DatasetInfo, extract, fetch, read_idx


@pytest.mark.data
def test_all_book_sets_found_locally():
    for name in ["adult_sample", "imdb_sample", "movie_lens_sample", "mnist_tiny", "camvid_tiny", "coco_tiny",
                 "dogscats", "fashion_mnist", "rossmann_sample"]:
        p = D.path(name, download=False)
        assert p.is_dir() and all((p / f).exists() for f in D.REGISTRY[name].files)


def test_unknown_name():
    with pytest.raises(KeyError, match="unknown data set 'nope'"):
        D.path("nope")


def test_not_local_without_download(monkeypatch, tmp_path):
    monkeypatch.setenv("PIPEKIT_DATA", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="not available locally"):
        D.path("adult_sample", download=False)


def _archive(tmp_path, name="toy"):
    src = tmp_path / "src" / name
    (src / "train").mkdir(parents=True)
    (src / "labels.csv").write_text("name,label\ntrain/a.png,1\n")
    (src / "train" / "a.png").write_bytes(b"x")
    arc = tmp_path / f"{name}.tgz"
    with tarfile.open(arc, "w:gz") as t:
        t.add(src, arcname=name)
    return arc


def test_fetch_downloads_extracts_and_verifies(tmp_path, monkeypatch):
    arc = _archive(tmp_path)
    info = D.register_dataset(DatasetInfo("toy", (arc.as_uri(),), ("labels.csv", "train")))
    monkeypatch.setenv("PIPEKIT_DATA", str(tmp_path / "none"))
    monkeypatch.setenv("PIPEKIT_CACHE", str(tmp_path / "cache"))
    p = D.path("toy")
    assert p == tmp_path / "cache" / "data" / "toy" and (p / "train" / "a.png").read_bytes() == b"x"
    assert D.locate("toy") == p  # second lookup finds the cached copy
    bad = DatasetInfo("toy2", (arc.as_uri(),), ("labels.csv", "missing.txt"))
    with pytest.raises(ValueError, match=r"lacks \['missing.txt'\]"):
        fetch(bad, tmp_path / "c2")
    wrong = DatasetInfo("toy3", (arc.as_uri(),), ("labels.csv",),
                        checksums={arc.as_uri(): Checksum(arc.stat().st_size, sha256="0" * 64)})
    with pytest.raises(ValueError, match="checksum mismatch"):
        fetch(wrong, tmp_path / "c3")
    del D.REGISTRY[info.name]


def test_extract_refuses_path_traversal(tmp_path):
    evil = tmp_path / "evil.tgz"
    payload = tmp_path / "p.txt"
    payload.write_text("x")
    with tarfile.open(evil, "w:gz") as t:
        t.add(payload, arcname="../../escaped.txt")
    with pytest.raises(ValueError, match="outside"):
        extract(evil, tmp_path / "out")
    assert not (tmp_path.parent / "escaped.txt").exists()


def test_read_idx_fashion_mnist():
    p = D.path("fashion_mnist")
    x, y = read_idx(p / "t10k-images-idx3-ubyte.gz"), read_idx(p / "t10k-labels-idx1-ubyte.gz")
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8 and y.shape == (10000,)
    assert sorted(np.unique(y).tolist()) == list(range(10)) and np.bincount(y).min() == 1000


def test_read_idx_rejects_garbage(tmp_path):
    f = tmp_path / "x.idx"
    f.write_bytes(b"\x01\x02\x03\x04" * 4)
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(f)


@pytest.mark.data
def test_cli_lists_local_sets(capsys):
    from pipekit.cli import main

    assert main(["datasets", "list"]) == 0
    out = capsys.readouterr().out
    assert "adult_sample" in out and "local" in out


def test_cli_summary_and_run(capsys):
    from pipekit.cli import main

    assert main(["summary", "mnist_tiny"]) == 0
    out = capsys.readouterr().out
    assert "Collecting items: 1408 rows" in out and "709 train, 699 valid" in out
    assert main(["run", "mnist_tiny", "--quick"]) == 0
    assert "result: mnist_tiny" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="no recipe named 'nope'"):
        main(["run", "nope"])


@pytest.mark.data
def test_untar_data_gives_the_books_first_line_its_local_folder():
    from pipekit.data import URLs, untar_data
    path = untar_data(URLs.MNIST_TINY)
    assert path == D.path("mnist_tiny") and {"labels.csv", "train", "valid"} <= {p.name for p in path.iterdir()}
    for name, folder in [("ADULT_SAMPLE", "adult_sample"), ("IMDB_SAMPLE", "imdb_sample"),
                         ("ML_SAMPLE", "movie_lens_sample"), ("CAMVID_TINY", "camvid_tiny"),
                         ("COCO_TINY", "coco_tiny"), ("DOGS", "dogscats")]:
        assert untar_data(getattr(URLs, name)) == D.path(folder)
    assert untar_data("adult_sample") == D.path("adult_sample")    # a registered name works too
    assert "MNIST_TINY" in dir(URLs)


def test_untar_data_names_what_it_has_for_an_unknown_set(monkeypatch, tmp_path):
    from pipekit.data import URLs, untar_data
    with pytest.raises(AttributeError, match=r"no data set registered as URLs.PETS; it knows .*URLs.MNIST_TINY "
                                             r"\(mnist_tiny\).*register_dataset"):
        _ = URLs.PETS
    with pytest.raises(ValueError, match=r"no registered data set comes from 'https://example.org/pets.tgz'.*"
                                         r"register_dataset"):
        untar_data("https://example.org/pets.tgz")
    # a data set the user registers is found by its address, as the error says
    arc = _archive(tmp_path, "pets")
    url = arc.as_uri()
    monkeypatch.setenv("PIPEKIT_DATA", str(tmp_path / "none"))
    monkeypatch.setenv("PIPEKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(D.REGISTRY, "pets", DatasetInfo("pets", (url,), ("labels.csv", "train")))
    with pytest.warns(UserWarning, match="no pinned checksum"):
        folder = untar_data(url)
    assert (folder / "train" / "a.png").read_bytes() == b"x"
    assert untar_data(url) == folder                                 # the second call finds the copy
