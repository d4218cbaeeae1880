"""What this process may use, read once: the CPUs it may run on, and the book's ``defaults`` namespace (fastai's
star imports give one, with ``defaults.cpus``; :mod:`pipekit.text` adds its tokenizer rules to the same object).

>>> from pipekit.data.runtime import defaults, usable_cpus
>>> defaults.cpus == usable_cpus() >= 1
True
"""
from __future__ import annotations

import os
from types import SimpleNamespace


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity where the system tells it (a container or a job limited to a
    few cores), else all the machine's.

    >>> usable_cpus() >= 1
    True
    """
    if hasattr(os, "sched_getaffinity"):  # macOS and Windows have none
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


#: the book's ``defaults``: ``defaults.cpus`` (chapter 19's ``n_workers = min(16, defaults.cpus)``);
#: ``defaults.text_proc_rules`` and ``defaults.text_spec_tok`` once :mod:`pipekit.text` is imported
defaults = SimpleNamespace(cpus=usable_cpus())
