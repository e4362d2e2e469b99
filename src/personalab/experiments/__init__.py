"""One module per experiment: its conditions, how it asks the model (through a ``Run``), and its analysis.

Every function here takes tables and returns tables (or asks a ``Run`` and returns its judged replies); none
draws a figure or writes book text: figures are in ``personalab.book.plots`` and the numbers each chapter
quotes in ``personalab.book.chapters``. A new experiment is a module here, a notebook in ``experiments/``,
and (if a chapter quotes it) a module in each of those two places.
"""
