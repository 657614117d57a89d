"""``kquant``'s entry point: signals, one-line errors and exit statuses, and napari when
no output is asked for. `run` and `run_batch` do the work.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import sys
import threading
import warnings

from ..files._files import read_image
from ..files._photos import photo_path
from ._args import USAGE, CLIError, build_parser
from ._run import QualityNotMet, _check_not_empty, colour_axis, interrupt_in, run, run_batch
from ._slide import run_slide, wants_slide

#: --quality's MIN not met (pngquant's status)
QUALITY_NOT_MET = 99


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread so that every ``finally`` cleans up."""


def _terminated(signum, frame):
    raise _Terminated


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"kquant: warning: {message}", file=sys.stderr)


# --- napari ---------------------------------------------------------------------------------


#: Qt platforms napari cannot draw on (no OpenGL context, or no display at all)
_NO_OPENGL = {"offscreen", "minimal", "minimalegl", "vnc", "linuxfb", "vkkhrdisplay", "directfb"}
_QT_PLATFORMS = {"xcb", "wayland", "wayland-egl", "eglfs"} | _NO_OPENGL


def _qt_platform() -> str:
    """The Qt platform QT_QPA_PLATFORM makes Qt load: the first known name of its ';' list
    (each may carry options after ':'; Qt matches names whatever their case)."""
    names = os.environ.get("QT_QPA_PLATFORM", "").split(";")
    names = (name.split(":")[0].strip().lower() for name in names)
    return next((name for name in names if name in _QT_PLATFORMS), "")


def has_display() -> bool:
    """Whether Qt can open a window napari can draw in here: an X or Wayland display that
    answers (Qt aborts the process when the display it is given does not); not the
    platforms without OpenGL (offscreen, minimal, vnc, ...)."""
    if sys.platform != "linux":
        return True
    if _qt_platform() in _NO_OPENGL:  # napari fails at its first layer, or Qt aborts
        return False
    if os.environ.get("WAYLAND_DISPLAY"):
        return True
    if not os.environ.get("DISPLAY"):
        return False
    import ctypes
    import ctypes.util

    library = ctypes.util.find_library("X11")
    if library is None:  # cannot ask: let Qt try
        return True
    xlib = ctypes.CDLL(library)
    xlib.XOpenDisplay.restype = ctypes.c_void_p
    xlib.XOpenDisplay.argtypes = [ctypes.c_char_p]
    display = xlib.XOpenDisplay(None)
    if not display:
        return False
    xlib.XCloseDisplay.argtypes = [ctypes.c_void_p]
    xlib.XCloseDisplay(display)
    return True


def open_viewer(args: argparse.Namespace):
    """A napari viewer with the image loaded and the widget docked, set to ``-k``."""
    if not has_display():
        shown, platform = os.environ.get("DISPLAY"), _qt_platform()
        where = f" (DISPLAY={shown} does not answer)" if shown else ""
        if platform in _NO_OPENGL:
            where = f" (QT_QPA_PLATFORM={platform} gives napari no OpenGL)"
        raise CLIError(f"no display to open napari on{where}; give -o OUT to write a file instead")
    try:
        import napari
    except ImportError:
        raise CLIError(
            "napari is not installed: pip install 'napari-kquant[all]', or give -o OUT"
        ) from None
    source = args.images[0] if args.images else photo_path()
    image = read_image(source)
    viewer = napari.Viewer()
    name = os.path.splitext(os.path.basename(source))[0]
    viewer.add_image(image, name=name, rgb=colour_axis(image) is not None)
    _, widget = viewer.window.add_plugin_dock_widget("napari-kquant", "K-means quantization")
    widget.form.k.value = args.k
    return viewer


class _Reports:
    """Standard output that a closed pipe (``kquant ... | head``) or a full disk does not
    stop: the files are written whatever becomes of the lines that report them; the
    first error is kept (``error``) and what follows is dropped."""

    def __init__(self, stream):
        self.stream, self.error = stream, None

    def write(self, text):
        if self.error is None and self.stream is not None:  # (None: started with it closed)
            try:
                return self.stream.write(text)
            except OSError as e:
                self.error = e
        return len(text)

    def flush(self):
        if self.error is None and self.stream is not None:
            try:
                self.stream.flush()
            except OSError as e:
                self.error = e

    def __getattr__(self, name):
        return getattr(self.stream, name)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``kquant`` console script; returns the exit status."""
    stdout = sys.stdout
    sys.stdout = reports = _Reports(stdout)
    try:
        status = _main(argv)
        reports.flush()
    finally:
        sys.stdout = stdout
    if reports.error is not None:
        if isinstance(reports.error, BrokenPipeError):  # the reader left: nothing to say
            with contextlib.suppress(OSError, ValueError):  # (no flush error at exit)
                os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())
        else:
            print(f"kquant: cannot write to standard output ({reports.error.strerror}); "
                  "the files were written", file=sys.stderr)  # fmt: skip
            status = status or 1
    return status


def _main(argv: list[str] | None) -> int:
    import cv2

    # OpenCV's own warnings: every failure is reported here, in one line
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    warnings.showwarning = _one_line_warning
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)  # unwinds: staged outputs are removed
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)
        _check_not_empty(args)
        if args.indexed and args.table and not (args.output or args.labels or args.out_dir):
            raise CLIError("--indexed writes -o, --labels or --out-dir as palette files: give one")
        if args.write_labels and not args.out_dir:
            raise CLIError("--write-labels is for batches (--out-dir); one image's: --labels FILE")
        if args.scheduler is not None:
            with _client(args.scheduler):
                return _dispatch(args, parser)
        return _dispatch(args, parser)
    except BaseException as e:
        # a signal: also under a SystemError (handled as numba returned a kernel's arrays)
        # or under an error raised as it unwound (a thread pool's lock)
        stop = interrupt_in(e)
        if isinstance(stop, KeyboardInterrupt):
            print("kquant: interrupted; nothing more was written", file=sys.stderr)
            return _leave(130)
        if isinstance(stop, _Terminated):
            print("kquant: terminated; nothing more was written", file=sys.stderr)
            return _leave(143)
        if isinstance(e, CLIError | ValueError | TypeError):
            print(f"kquant: error: {_as_options(str(e), parser)}", file=sys.stderr)
            return USAGE
        if isinstance(e, QualityNotMet):
            print(f"kquant: {e}", file=sys.stderr)
            return QUALITY_NOT_MET
        raise


#: The engine's parameters that kquant's options give: its errors name them.
_PARAMETERS = ("k", "max_iter", "epsilon", "attempts", "sample", "seed", "init", "criteria",
               "color_space", "white", "dither_strength", "min_size", "smooth", "speed",
               "pixel_size", "background", "unit", "dither")  # fmt: skip


def _as_options(message: str, parser) -> str:
    """An engine error as kquant's: the parameter it starts with (``max_iter must ...``)
    and every ``name=value`` (``k=8``) read as the options that give them (``--max-iter``,
    ``-k 8``)."""
    flags = {a.dest: max(a.option_strings, key=len) for a in parser._actions
             if a.dest in _PARAMETERS and a.option_strings}  # fmt: skip
    names = "|".join(map(re.escape, flags))
    if message.startswith(("unrecognized arguments", "argument ")):  # argparse's: as it is
        return message
    message = message.replace("k='auto'", "--quality").replace("; give k as a number", "")
    parts = re.split(r"""('[^']*'|"[^"]*")""", message)  # quoted paths and values stay as is
    for i in range(0, len(parts), 2):
        parts[i] = re.sub(rf"\b({names})=(\S*?)(?=[\s,;)]|$)",  # (a quoted value: after)
                          lambda m: f"{flags[m.group(1)]} {m.group(2)}", parts[i])  # fmt: skip
        parts[i] = re.sub(
            rf"\bgive ({names}) ([<>]=?) ({names})\b",  # give sample >= k
            lambda m: f"give {flags[m[1]]} {m[2]} {flags[m[3]]}",
            parts[i],
        )
        parts[i] = parts[i].replace("--sample None", "--sample all")  # the CLI's word for it
        parts[i] = re.sub(
            r"\b(min_size|max_iter|dither_strength|color_space|pixel_size)\b",
            lambda m: flags[m[1]],
            parts[i],
        )  # (no English word has a _)
    return re.sub(rf"^({names}) ", lambda m: f"{flags[m.group(1)]} ", "".join(parts))


def _client(address: str):
    """A dask.distributed client of the scheduler at ``address``: every dask computation
    of the run goes to its workers while it is open."""
    try:
        from distributed import Client
    except ImportError:
        raise CLIError(
            "--scheduler needs the distributed package: pip install distributed"
        ) from None
    import dask

    try:  # as long as dask's connect timeout (distributed.comm.timeouts.connect)
        return Client(address, timeout=dask.config.get("distributed.comm.timeouts.connect"))
    except (OSError, TimeoutError, ValueError) as e:
        raise CLIError(f"--scheduler {address!r}: cannot connect ({e})") from None


def _dispatch(args, parser) -> int:
    """The run the arguments ask for: a batch, a slide, one image, or napari."""
    if len(args.images) > 1 or args.out_dir:
        return run_batch(args, parser)
    if args.images and wants_slide(args):
        print(run_slide(args, parser))
        return 0
    if any(path is not None for path in (args.output, args.labels, args.table)):
        print(run(args, parser))
        return 0
    asked = (args.save_palette, args.palette, args.pixel_size, args.unit, args.dither,
             args.dither_strength, args.min_size, args.smooth, args.white)  # fmt: skip
    if args.background or args.indexed or any(value is not None for value in asked):
        raise CLIError("give -o OUT (and/or --labels, --table) to write the result")
    if threading.current_thread() is threading.main_thread():  # (nothing staged to undo)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # in Qt, our handler aborts or is lost
    open_viewer(args)
    import napari

    napari.run()
    return 0


def _leave(status: int) -> int:
    """``status``, or, while an abandoned fit still runs cv2.kmeans in its helper thread,
    the process ends at once with it: finishing the interpreter under a running OpenCV
    thread aborts ("terminate called without an active exception"). Every output is
    already staged away or removed by then."""
    if any(t.name == "kquant-kmeans" and t.is_alive() for t in threading.enumerate()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status
