"""Packaging beside pyproject.toml for one thing pyproject cannot say: the built-in recipes live in
``recipes/`` (scripts a checkout runs as ``python recipes/adult.py``) and ship inside the package as
``pipekit.recipes``, so ``pipekit run NAME`` finds them in an installed wheel. pyproject.toml can map a
package to a folder but cannot add that package to the ones it finds under ``pipekit/``.
"""
from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["pipekit", "pipekit.*"]), "pipekit.recipes"],
      package_dir={"pipekit.recipes": "recipes"})
