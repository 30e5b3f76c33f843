"""`sg.cuda`: whether the cuda device can run here.

`Session(device="cuda")` runs compiled plans on an NVIDIA GPU through numba-cuda (the `cuda`
extra), or on Numba's CUDA simulator when NUMBA_ENABLE_CUDASIM=1 was set before numba was first
imported (slow: for tests on tiny shapes). numba is imported only when asked, so
`import symgraph` stays fast.
"""

from __future__ import annotations


def unavailable_reason() -> str | None:
    """Why the cuda device cannot run here, or None when it can (a GPU, or the simulator)."""
    try:
        from numba import cuda
    except ImportError as e:
        return (f"numba-cuda is not installed ({e}); install the cuda extra: "
                "pip install 'symgraph[cuda]'")
    try:
        if cuda.is_available():
            return None
    except Exception as e:  # a broken driver install raises instead of answering
        return f"the CUDA driver failed to start: {e}"
    return ("no usable NVIDIA GPU was found (numba-cuda sees no CUDA driver or device); set "
            "NUMBA_ENABLE_CUDASIM=1 before numba is first imported to run on Numba's CUDA "
            "simulator instead (slow: tiny shapes only)")


def is_available() -> bool:
    """True when `Session(device="cuda")` can run: a GPU numba-cuda can use, or the simulator."""
    return unavailable_reason() is None


def is_simulator() -> bool:
    """True when the cuda device is Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1)."""
    from numba import config

    return bool(config.ENABLE_CUDASIM)
