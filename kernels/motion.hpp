// Per-frame motion scores of a flow field, for the event spotter.
#pragma once
#include "image_view.hpp"

namespace microexp {

// Samples along an axis of `size` pixels at every `step`-th one: ceil(size / step), computed
// without overflow for any positive step.
inline int sample_count(int size, int step) { return size < 1 ? 0 : 1 + (size - 1) / step; }

struct MotionScores {
    double motion = 0, upper = 0, lower = 0, local = 0, nonrigid = 0;
};

// On every `step`-th row and column of the (rows, cols, 2) flow (h x w samples): the mean
// flow magnitude over all samples, over the upper half (rows < max(1, h / 2)) and over the lower third
// (rows >= 2h / 3); and the local score, the largest mean magnitude over a grid x grid
// partition (blocks of h / grid x w / grid samples, remainders dropped) of the flow with its
// component-wise median removed; `nonrigid`, the largest mean magnitude over a
// nonrigid_grid x nonrigid_grid partition of the flow with its least-squares affine fit removed
// (u, v = a + b x + c y over the samples: in-plane head translation, rotation, scale and shear
// leave it; a facial action stays), 0 when nonrigid_grid is 0 (not computed).
// `zero_nonfinite`: NaN/inf vectors count as zero motion. Requires h, w >= grid and
// >= nonrigid_grid. Scratch buffers are per thread: calls from several threads are safe.
MotionScores region_motion(const ViewF& flow, int step, int grid, int nonrigid_grid, bool zero_nonfinite);

}  // namespace microexp
