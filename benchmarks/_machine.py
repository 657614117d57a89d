"""What the benchmarks print about the machine they ran on."""

import os
import platform
import subprocess


def cpu_and_memory() -> tuple[str, float]:
    """The CPU's model name and the memory in GiB."""
    cpu = platform.processor() or platform.machine()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return cpu, os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def kquant_version() -> str:
    """napari-kquant's version, with the commit when run from a git checkout (an editable
    install's version string is the one written when it was installed)."""
    import napari_kquant

    folder = os.path.dirname(napari_kquant.__file__)
    try:
        commit = subprocess.run(
            ["git", "-C", folder, "describe", "--always", "--dirty"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return napari_kquant.__version__
    return f"{napari_kquant.__version__.split('+')[0]} (commit {commit})"
