"""``learn.predict(item, with_input=True)`` as fastai's: the input as the model read it, decoded, before the
prediction; ``rm_type_tfms`` taken only as None."""
import numpy as np
import polars as pl
import pytest

import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.learn import Learner, accuracy, simple_cnn
from pipekit.tabular import Categorify, FillMissing, Normalize, TabularDataLoaders, tabular_learner
from pipekit.data import get_image_files
from pipekit.vision import ImageDataLoaders, Resize

pytestmark = pytest.mark.data


def test_an_image_and_a_row_come_back_with_their_prediction():
    path = D.path("mnist_tiny")
    dls = ImageDataLoaders.from_folder(path, train="train", valid="valid", item_tfms=Resize(28), bs=32, seed=0)
    learn = Learner(dls, simple_cnn(3, 2, (8, 16)), metrics=accuracy)
    f = get_image_files(path / "valid")[0]
    shown, label, idx, probs = learn.predict(f, with_input=True)
    plain = learn.predict(f)
    assert (label, int(idx)) == (plain[0], int(plain[1])) and np.allclose(probs, plain[2])
    # the decoded input is the picture the model read: the file's pixels (mnist_tiny's are 28 x 28 grey as RGB)
    from PIL import Image
    pixels = np.asarray(Image.open(f).convert("RGB"), dtype=np.float32) / 255
    assert shown.shape == (28, 28, 3) and np.allclose(shown, pixels, atol=1 / 255)

    df = pl.read_csv(D.path("adult_sample") / "adult.csv").head(800)
    tdls = TabularDataLoaders.from_df(df, y_names="salary", cat_names=["workclass", "education"],
                                      cont_names=["age", "fnlwgt"], procs=[Categorify, FillMissing, Normalize], bs=64)
    row = df.row(0, named=True)
    (cats, conts), *_ = tabular_learner(tdls, layers=[20]).predict(row, with_input=True)
    assert cats == {"workclass": row["workclass"], "education": row["education"]}
    assert conts == pytest.approx({"age": row["age"], "fnlwgt": row["fnlwgt"]}, rel=1e-5)  # normalising undone

    with pytest.raises(ParameterError, match="rm_type_tfms=1 is not accepted"):
        learn.predict(f, rm_type_tfms=1)
