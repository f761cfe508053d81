"""What machine a benchmark ran on: figures differ 2-5x between the machines behind this
environment (status.md item 54), so every benchmark header names the CPU."""

import os
import platform


def cpu_model():
    """The CPU's model name (``/proc/cpuinfo``; else ``platform.processor()``), with the core
    count and whether it has AVX-512 (oneDNN's convolutions use it where present)."""
    name, flags = "", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not name:
                    name = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    name = name or platform.processor() or platform.machine()
    avx = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{name}, {os.cpu_count()} cores, {avx}" if flags else f"{name}, {os.cpu_count()} cores"
