"""The bottom layer: options and their checks, image layout, colour spaces, the compiled
nearest-centre kernels, and writes that land whole. numpy, OpenCV and numba only; imports
nothing else of the package."""
