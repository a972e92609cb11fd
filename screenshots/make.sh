#!/usr/bin/env bash
# Regenerates every README screenshot from the demo study (run from the repository root after
# `cargo build --release`): each PNG is `rote screenshot` of one view.
set -euo pipefail
R=${ROTE:-target/release/rote}
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
shot() { "$R" screenshot --out "screenshots/$1.png" "${@:2}"; }
shot data --view data
shot data-by-loss --view data --sort loss
shot data-by-mem --view data --sort mem
shot models --view models
shot memorization --view memorization
shot influence --view influence
shot privacy --view privacy
shot privacy-diffusion --view privacy-diffusion
shot extraction --view extraction
shot inpainting-batch --view inpainting-batch
shot inversion --view inversion
shot layers --view layers-drill
shot exposure --view exposure
shot text --view text
shot tabular --view tabular
shot defences --view defences
shot settings --view settings
# Presentation mode at a projector's resolution: mid-denoising, and the finished inversion.
shot present-extraction --view present-extraction@30 --width 1920 --height 1080
shot present-inpainting --view present-inpainting --width 1920 --height 1080
shot present-inversion --view present-inversion --width 1920 --height 1080
shot present-layers --view present-layers --width 1920 --height 1080
shot present-exposure --view present-exposure --width 1920 --height 1080
# The whole talk on a 1280x720 projector (every slide fits; see tests/present_fit.rs).
for step in data memorized influence extraction inpainting inversion layers exposure icl; do
  shot "present-720-$step" --view "present-$step" --width 1280 --height 720
done
