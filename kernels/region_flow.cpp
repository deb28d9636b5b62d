#include "region_flow.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>

namespace microexp {
namespace {

// A finite double as float32, saturated at float's largest value (a flow near it can have a
// magnitude, or a mean rounded, just beyond it).
float saturated(double x) { return (float)std::clamp(x, -(double)FLT_MAX, (double)FLT_MAX); }

}  // namespace

void region_flow(const ViewF& flow, const RegionBox* boxes, int count, bool zero_nonfinite, float* out) {
    for (int k = 0; k < count; ++k) {
        const RegionBox& b = boxes[k];
        double su = 0, sv = 0, bu[kDirectionBins] = {0}, bv[kDirectionBins] = {0};
        long long n = 0, bn[kDirectionBins] = {0};
        for (int y = b.y0; y < b.y1; ++y) {
            const float* row = flow.row(y);
            for (int x = b.x0; x < b.x1; ++x) {
                float u = row[2 * x], v = row[2 * x + 1];
                if (zero_nonfinite && !(std::isfinite(u) && std::isfinite(v))) u = v = 0.f;
                ++n;
                su += u;
                sv += v;
                const int bin = direction_bin(u, v);
                if (bin >= 0) {
                    ++bn[bin];
                    bu[bin] += u;
                    bv[bin] += v;
                }
            }
        }
        int main = 0;
        for (int i = 1; i < kDirectionBins; ++i)
            if (bn[i] > bn[main]) main = i;
        double mu = 0, mv = 0;
        if (bn[main] > 0) {
            mu = bu[main] / (double)bn[main];
            mv = bv[main] / (double)bn[main];
        }
        float* o = out + (std::ptrdiff_t)k * kRegionStats;
        o[0] = saturated(su / (double)n);
        o[1] = saturated(sv / (double)n);
        o[2] = saturated(std::hypot(mu, mv));
        o[3] = bn[main] > 0 ? (float)std::atan2(mv, mu) : 0.f;
    }
}

}  // namespace microexp
