"""The command line, `kquant`: the top layer (it may open napari). Reads and writes files
through `files`, quantizes through the public functions."""
