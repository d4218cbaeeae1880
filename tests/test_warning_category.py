"""pipekit's warnings share one category, PipekitWarning (a UserWarning): a filter on it silences them as a group,
where a filter by module cannot (each points at the user's line), and leaves a user's own warnings alone."""
import subprocess
import sys
import warnings
from functools import partial

import pytest

import pipekit
import pipekit.datasets as D
from pipekit.core.errors import warn
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
from pipekit.data.cache import CacheRebuildWarning, CacheWriteWarning

pytestmark = pytest.mark.data


def _mnist_block(**kw):
    return DataBlock(blocks=(CategoryBlock, CategoryBlock), get_x=parent_label, get_y=parent_label,
                     splitter=GrandparentSplitter(), **{"get_items": get_image_files, **kw})


def test_pipekit_warning_is_a_user_warning_exported_where_the_errors_are():
    assert issubclass(pipekit.PipekitWarning, UserWarning) and "PipekitWarning" in pipekit.__all__
    assert pipekit.core.PipekitWarning is pipekit.PipekitWarning is pipekit.core.errors.PipekitWarning
    assert issubclass(CacheRebuildWarning, pipekit.PipekitWarning) and issubclass(CacheWriteWarning,
                                                                                  pipekit.PipekitWarning)
    with pytest.warns(pipekit.PipekitWarning):  # warn()'s own kind, unless told one of its kinds
        warn("pipekit's own")


def test_a_filter_on_the_category_silences_pipekits_warning_on_real_data_and_not_the_users():
    # mnist_tiny's test/ folder holds 20 unlabelled images that GrandparentSplitter places in neither split
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        _mnist_block().datasets(D.path("mnist_tiny"))
    ours = [w for w in said if "in neither the training nor the validation set" in str(w.message)]
    assert len(ours) == 1 and ours[0].category is pipekit.PipekitWarning
    assert ours[0].filename == __file__  # it points at this line: a filter by module="pipekit" cannot reach it

    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", pipekit.PipekitWarning)
        dsets = _mnist_block().datasets(D.path("mnist_tiny"))
        warnings.warn("the user's own warning", stacklevel=1)
    assert [(w.category, str(w.message)) for w in said] == [(UserWarning, "the user's own warning")]
    assert [len(s) for s in dsets.splits] == [709, 699]


def test_the_left_out_warning_says_how_to_avoid_it_and_that_way_works_under_error():
    with pytest.warns(pipekit.PipekitWarning, match=r"20 of 1428 items are in neither the training nor the "
                      r"validation set and are left out \(first: .*test/.*\); to leave them out without this "
                      r"warning, list only the split's folders, get_items=partial\(get_image_files, "
                      r"folders=\['train', 'valid'\]\)"):
        _mnist_block().datasets(D.path("mnist_tiny"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a strict CI: the fix the message gives warns no more
        dsets = _mnist_block(get_items=partial(get_image_files, folders=["train", "valid"])).datasets(
            D.path("mnist_tiny"))
    assert [len(s) for s in dsets.splits] == [709, 699]


def test_pytests_W_option_resolves_the_category_by_its_dotted_name(tmp_path):
    test = tmp_path / "test_one.py"
    test.write_text("import warnings\nfrom pipekit.core.errors import warn\n\n"
                    "def test_pipekit():\n    warn('said by pipekit')\n\n"
                    "def test_user():\n    warnings.warn('said by the user')\n")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-o", "addopts=", "-p", "no:cacheprovider",
                           "-p", "no:xdist", "-W", "error::pipekit.PipekitWarning", str(test)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert "1 failed, 1 passed" in done.stdout, done.stdout + done.stderr
    assert "PipekitWarning: said by pipekit" in done.stdout
