#!/bin/sh
# Render the web app's PNG icons from ferry.svg. Run from this directory after
# changing the drawing, and commit the PNGs with it. Browsers and nginx keep
# /static/ for a year: a changed drawing needs new file names (and manifest entries). Needs rsvg-convert
# (Debian: apt-get install librsvg2-bin).
set -eu
for size in 192 512; do
  rsvg-convert --width "$size" --height "$size" --format png --output "ferry-$size.png" ferry.svg
done
