#!/usr/bin/env bash
# Install the system tools the report tests need: pdflatex (+ booktabs, xcolor, amssymb, graphicx,
# siunitx) to compile every generated .tex, and headless Chromium to open the HTML report.
# Idempotent: when every tool is already present it returns at once without touching apt.
# Usage: bash reports/install-tools.sh   (as root, or with sudo available)
set -euo pipefail

PACKAGES=(
  texlive-latex-base
  texlive-latex-recommended
  texlive-latex-extra
  texlive-science
  chromium
)

have_all() {
  command -v pdflatex >/dev/null 2>&1 || return 1
  command -v chromium >/dev/null 2>&1 || return 1
  local sty
  for sty in booktabs.sty xcolor.sty amssymb.sty graphicx.sty siunitx.sty; do
    kpsewhich "$sty" >/dev/null 2>&1 || return 1
  done
}

if have_all; then
  echo "install-tools: pdflatex, LaTeX packages and chromium already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "install-tools: not root and no sudo; install manually: ${PACKAGES[*]}" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}"
if have_all; then
  echo "install-tools: done"
else
  echo "install-tools: installed ${PACKAGES[*]} but a tool is still missing" >&2
  exit 1
fi
