"""``smollab report``: one self-contained HTML page (and its markdown twin) of a run directory's own files."""
