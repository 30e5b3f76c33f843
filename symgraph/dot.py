"""DOT text and Graphviz's `dot` program: the syntax layer under sg.visualize.

User strings enter DOT only through `esc` (inside quoted strings), so no name can end a string
early or inject syntax; the `dot` program runs as a subprocess on the text.
"""

from __future__ import annotations

import shutil
import subprocess


class DotNotFoundError(RuntimeError):
    """Graphviz's `dot` program is not installed (sg.to_dot still works without it)."""


def render_dot(source: str, fmt: str = "png", dpi: int | None = None,
               timeout: float = 120.0) -> bytes:
    """DOT source rendered by Graphviz's `dot` program into `fmt` (png, svg, pdf)."""
    dot = shutil.which("dot")
    if dot is None:
        raise DotNotFoundError(
            "drawing a graph needs Graphviz's `dot` program, which is not on PATH. Install it "
            "(Debian/Ubuntu: sudo apt-get install graphviz; macOS: brew install graphviz; "
            "conda: conda install graphviz; or run scripts/ensure_dot.sh), or call "
            "sg.to_dot(target) for the DOT source and render it elsewhere.")
    args = [dot, f"-T{fmt}"] + ([f"-Gdpi={int(dpi)}"] if dpi else [])
    try:
        done = subprocess.run(args, input=source.encode(), capture_output=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"Graphviz's dot took longer than {timeout:.0f} s; draw less (a "
                           "smaller collapse_depth, show_gradients=False)") from None
    if done.returncode != 0 or not done.stdout:
        raise RuntimeError(f"Graphviz's dot failed (exit {done.returncode}): "
                           f"{done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def heat_color(f: float) -> str:
    """White (no time) through light orange to red (the slowest)."""
    stops = [(1.0, (0xd7, 0x30, 0x1f)), (0.5, (0xfc, 0x8d, 0x59)), (0.0, (0xff, 0xf7, 0xec))]
    f = min(max(f, 0.0), 1.0)
    hi_f, hi = stops[0]
    for lo_f, lo in stops[1:]:
        if f >= lo_f:
            w = (f - lo_f) / (hi_f - lo_f)
            rgb = [round(a + (b - a) * w) for a, b in zip(lo, hi)]
            return "#" + "".join(f"{c:02x}" for c in rgb)
        hi_f, hi = lo_f, lo
    return "#fff7ec"


def esc(text: str) -> str:
    """`text` for the inside of a DOT quoted string: backslashes and quotes escaped, line breaks
    as \\n, other control characters shown as \\xNN; never ends the string early."""
    out = []
    for ch in str(text):
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def quote(value: str) -> str:
    """`value` as a DOT quoted string."""
    return f'"{esc(value)}"'


def attrs(values: dict[str, str], raw: set[str] = frozenset()) -> str:
    """[k="v", ...]; values in `raw` are already escaped (they hold \\n line breaks). Keys are
    generated here, never user strings."""
    items = ", ".join(f'{k}="{v}"' if k in raw else f"{k}={quote(v)}" for k, v in values.items())
    return f"[{items}]"
