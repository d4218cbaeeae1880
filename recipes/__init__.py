"""pipekit's built-in recipes: one runnable file per task from the book, each ending with a ``result:`` line.

In a source checkout they are the ``recipes/`` folder; installed, they are the package ``pipekit.recipes``;
``pipekit run NAME`` (``pipekit run adult``) runs one in both. A recipe exposes its data to
``pipekit summary NAME`` with ``datablock()`` (the DataBlock and its source) or, when its data is not
built by a DataBlock (tables, ratings, arrays), ``dataloaders()``.
"""
