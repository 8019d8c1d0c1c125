#!/usr/bin/env bash
# Re-creates samples/photos/*.jpg from scikit-image's sample data as packaged by Debian
# (python3-skimage ships skimage/data/*.png|jpg). Only photos whose licence scikit-image documents
# as public domain or CC0 are kept; see samples/photos/LICENSE.md.
#
# Usage: scripts/fetch-sample-photos.sh [path/to/python3-skimage_*.deb]
# Without an argument the package is fetched with `apt-get download` (run `apt-get update` first
# if apt has no package lists). Nothing is installed. Needs dpkg-deb and node with this repo's
# node_modules (sharp) installed.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$repo/samples/photos"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if [[ $# -ge 1 ]]; then
  deb="$(realpath "$1")"
else
  (cd "$work" && apt-get download python3-skimage)
  deb="$(ls "$work"/python3-skimage_*.deb)"
fi
echo "package: $(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version)"
dpkg-deb -x "$deb" "$work/x"
data="$(find "$work/x" -type d -path '*/skimage/data' | head -n 1)"
[[ -n "$data" ]] || { echo "no skimage/data folder in $deb" >&2; exit 1; }

mkdir -p "$dest"
# source file in skimage/data -> name in samples/photos (JPEG, quality 90, metadata stripped).
cd "$repo"
SRC="$data" DEST="$dest" node --input-type=module -e '
import sharp from "sharp";
import { statSync } from "node:fs";
const photos = {
  "astronaut.png": "astronaut.jpg",
  "chelsea.png": "chelsea.jpg",
  "coffee.png": "coffee.jpg",
  "rocket.jpg": "rocket.jpg",
  "retina.jpg": "retina.jpg",
  "hubble_deep_field.jpg": "hubble_deep_field.jpg",
};
let total = 0;
for (const [src, out] of Object.entries(photos)) {
  const file = `${process.env.DEST}/${out}`;
  const info = await sharp(`${process.env.SRC}/${src}`).toColourspace("srgb").jpeg({ quality: 90 }).toFile(file);
  const size = statSync(file).size;
  total += size;
  console.log(`${out}: ${info.width}x${info.height}, ${(size / 1024).toFixed(0)} KiB`);
}
console.log(`total ${(total / 1024).toFixed(0)} KiB`);
'
