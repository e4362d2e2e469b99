"""One module per experiment: the figures its notebook draws (tables in, a matplotlib figure out).

The shared style, ``save_figure`` and the generic ``rate_bars`` are in ``personalab.book.figures``.
"""
