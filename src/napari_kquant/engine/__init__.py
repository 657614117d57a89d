"""The engine: sampling, the cv2.kmeans fit, applying a palette eagerly and lazily,
`Palette` (and its files), `QuantizeResult` (and its table). Imports `core` and
`finish`; numpy, OpenCV, numba, and dask/pandas only inside the functions that need them."""
