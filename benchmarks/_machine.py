"""What the benchmarks print about the machine they ran on."""

import os
import platform


def cpu_and_memory() -> tuple[str, float]:
    """The CPU's model name and the memory in GiB."""
    cpu = platform.processor() or platform.machine()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return cpu, os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
