// Per-frame motion scores of a flow field, for the event spotter.
#pragma once
#include "image_view.hpp"

namespace microexp {

struct MotionScores {
    double motion = 0, upper = 0, lower = 0, local = 0;
};

// On every `step`-th row and column of the (rows, cols, 2) flow (h x w samples): the mean
// flow magnitude over all samples, over the upper half (rows < h / 2) and over the lower third
// (rows >= 2h / 3); and the local score, the largest mean magnitude over a grid x grid
// partition (blocks of h / grid x w / grid samples, remainders dropped) of the flow with its
// component-wise median removed. `zero_nonfinite`: NaN/inf vectors count as zero motion.
// Requires h, w >= grid. Scratch buffers are per thread: calls from several threads are safe.
MotionScores region_motion(const ViewF& flow, int step, int grid, bool zero_nonfinite);

}  // namespace microexp
