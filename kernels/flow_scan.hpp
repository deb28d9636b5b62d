// Reading a caller's flow field safely: one pass counts its NaN/inf components and finds the
// power of two that keeps every later square and sum of the finite ones inside float range.
#pragma once
#include <cstddef>
#include <vector>

#include "image_view.hpp"

namespace microexp {

// Finite components above 2^61 are divided by 2^shift first (an exact operation), so that their
// squares, differences and sums stay finite. Every consumer is either invariant to the scale
// (the min-max normalised encodings) or proportional to it (motion scores, scaled back).
constexpr int kFlowSafeExponent = 60;

struct FlowScan {
    std::ptrdiff_t nonfinite = 0;  // NaN or infinite components
    int shift = 0;                 // 0: no component needs scaling
};

// One pass over a (rows, cols, 2) flow field.
FlowScan scan_flow(const ViewF& flow);

// The shift for `n` packed values (the samples a kernel gathered itself).
int flow_shift(const float* values, std::size_t n);

// The flow to compute on: `flow` itself, or a packed copy in `storage` with non-finite vectors
// zeroed (when `zero_nonfinite`) and every component divided by 2^scan.shift.
ViewF prepared_flow(const ViewF& flow, const FlowScan& scan, bool zero_nonfinite,
                    std::vector<float>& storage);

}  // namespace microexp
