"""One module per experiment: what its chapter quotes (``chapter_numbers``, phrases, display tables).

Each reads only committed results files, so the book never talks to a model; numbers are formatted here once
and glued into the prose by the chapter's hidden cells.
"""
