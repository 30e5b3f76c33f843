#!/bin/sh
# Installs Graphviz's `dot` program (used to draw graphs) where it is missing.
if command -v dot >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = "0" ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "symgraph: Graphviz's 'dot' program is missing and this user cannot install it." >&2
    echo "  Install it with your package manager (Debian/Ubuntu: sudo apt-get install graphviz;" >&2
    echo "  macOS: brew install graphviz), then run make again. Everything but drawing works." >&2
    exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
    echo "symgraph: installing Graphviz (dot) with apt-get"
    $SUDO apt-get update -qq >/dev/null && \
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq graphviz >/dev/null && exit 0
    echo "symgraph: apt-get could not install graphviz; drawing graphs will not work until" \
         "'dot' is installed (apt-get install graphviz)." >&2
    exit 0
fi
echo "symgraph: no apt-get here; install Graphviz's 'dot' with your package manager." >&2
exit 0
