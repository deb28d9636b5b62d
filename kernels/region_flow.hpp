// Per-region flow statistics for region-based spotters: each region's mean flow and its main
// direction (MDMO-style: the 8-bin direction histogram's fullest bin, and the mean vector there).
#pragma once
#include "image_view.hpp"

namespace microexp {

constexpr int kRegionStats = 4;  // mean u, mean v, main-direction magnitude, main-direction angle
constexpr int kDirectionBins = 8;

struct RegionBox {
    int x0, y0, x1, y1;  // columns [x0, x1), rows [y0, y1); inside the flow, not empty
};

// The direction bin of a vector: bin b holds angles [45 b, 45 (b + 1)) degrees, counter-clockwise
// from +u (atan2(v, u) taken to [0, 360)); -1 for the zero vector. Decided by exact comparisons
// of u, v and their magnitudes (no atan2), so a reference gets the same bins.
inline int direction_bin(float u, float v) {
    if (u > 0 && v >= 0) return v < u ? 0 : 1;
    if (u <= 0 && v > 0) return -u < v ? 2 : 3;
    if (u < 0 && v <= 0) return -v < -u ? 4 : 5;
    if (u >= 0 && v < 0) return u < -v ? 6 : 7;
    return -1;
}

// For each of `count` boxes of the (rows, cols, 2) flow, into out[k * 4 .. k * 4 + 3]: the mean
// u and v over its pixels; the magnitude and angle (radians, atan2(v, u)) of the mean vector of
// the pixels in its fullest direction bin (the lowest bin on a tie; 0 and 0 when every vector is
// zero). `zero_nonfinite`: NaN/inf vectors count as zero vectors. Sums are kept in double; a
// value beyond float32's range (the magnitude of a flow near it) is saturated at its largest.
void region_flow(const ViewF& flow, const RegionBox* boxes, int count, bool zero_nonfinite, float* out);

}  // namespace microexp
