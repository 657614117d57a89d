"""Analysis on fits and results: choosing K (`k_curve`, ``k="auto"``) and cluster edits
(merge, split, recolour). Imports `core` and `engine`."""
