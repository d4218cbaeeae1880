"""The book's notebooks start with ``from fastai.vision.all import *`` (text, tabular, collab alike) and use every
name unqualified; pipekit's ``from pipekit.<app>.all import *`` does the same. Each runs in a fresh interpreter, as
a notebook's first cell would, on the real data sets."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.data


def _run(code: str) -> str:
    env = {**os.environ, "PIPEKIT_QUIET": "1", "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_vision_star_import_runs_chapter_1_and_its_tensors():
    out = _run("""
        from pipekit.vision.all import *
        set_seed(0)
        path = untar_data(URLs.MNIST_TINY)
        dls = ImageDataLoaders.from_folder(path, valid='valid', item_tfms=Resize(28), bs=64, seed=0)
        learn = vision_learner(dls, 'simple_cnn', metrics=error_rate)
        learn.fine_tune(1)
        img = PILImage.create(path/'valid'/'3'/'7006.png')
        label, _, probs = learn.predict(img)
        x = tensor(np.array(Image.open(path/'valid'/'3'/'7006.png'))).float() / 255
        print(label, float(probs.sum()), 'x'.join(map(str, F.avg_pool2d(x[None], 2).shape)),
              type(Normalize.from_stats(*imagenet_stats)).__module__, isinstance(learn.model, nn.Module),
              partial(pow, 2)(3), len(get_image_files(path).filter(lambda p: p.parent.name == '7')))
    """)
    label, total, shape, norm, is_module, eight, sevens = out.split()
    assert label in ("3", "7") and abs(float(total) - 1) < 1e-5 and shape == "1x14x14"
    assert norm == "pipekit.vision.transforms" and is_module == "True" and eight == "8" and int(sevens) > 300


def test_text_star_import_tokenizes_and_numericalizes_as_chapter_10():
    out = _run("""
        from pipekit.text.all import *
        path = untar_data(URLs.IMDB_SAMPLE)
        df = pd.read_csv(path/'texts.csv')
        tkn = Tokenizer(WordTokenizer())
        toks = tkn(df.text[0])
        num = Numericalize(min_freq=1)
        num.setup(L(list(df.text[:50])).map(tkn))
        print(toks[0], len(num(toks)) == len(toks), coll_repr(toks, 3).startswith('(#'))
    """)
    assert out.split() == ["xxbos", "True", "True"]


def test_tabular_star_import_runs_chapter_9_and_chapter_8_names():
    out = _run("""
        from pipekit.tabular.all import *
        from pipekit.inspection import *
        path = untar_data(URLs.ADULT_SAMPLE)
        df = pd.read_csv(path/'adult.csv')
        to = TabularPandas(df, procs=[Categorify, FillMissing, Normalize], cat_names=['workclass', 'education'],
                           cont_names=['age', 'fnlwgt'], y_names='salary', splits=RandomSplitter(seed=42)(range_of(df)))
        ratings = pd.read_csv(untar_data(URLs.ML_SAMPLE)/'ratings.csv')
        dls = CollabDataLoaders.from_df(ratings, bs=64)
        print(Normalize.__module__, len(to.train) + len(to.valid), callable(cluster_columns), collab_learner.__name__,
              round(float(to.train.xs['age'].mean()), 3))
    """)
    module, n, clusters, collab, mean = out.split()
    assert module == "pipekit.tabular.procs" and n == "32561" and clusters == "True" and collab == "collab_learner"
    assert abs(float(mean)) < 1e-3  # Normalize: the training rows' mean is 0
