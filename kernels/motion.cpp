#include "motion.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace microexp {
namespace {

// Median as NumPy computes it on float32: the middle value, or the float mean of the two.
float median_in_place(std::vector<float>& v) {
    const std::size_t n = v.size(), mid = n / 2;
    std::nth_element(v.begin(), v.begin() + mid, v.end());
    const float hi = v[mid];
    if (n % 2) return hi;
    const float lo = *std::max_element(v.begin(), v.begin() + mid);
    return (lo + hi) / 2.f;
}

}  // namespace

MotionScores region_motion(const ViewF& flow, int step, int grid, bool zero_nonfinite) {
    const int h = (flow.rows + step - 1) / step, w = (flow.cols + step - 1) / step;
    thread_local std::vector<float> u, v, med_u, med_v;  // reused: no per-frame allocation
    u.resize((std::size_t)h * w);
    v.resize(u.size());
    for (int r = 0; r < h; ++r) {
        const float* row = flow.row(r * step);
        for (int c = 0; c < w; ++c) {
            float a = row[2 * c * step], b = row[2 * c * step + 1];
            if (zero_nonfinite && !(std::isfinite(a) && std::isfinite(b))) a = b = 0.f;
            u[(std::size_t)r * w + c] = a;
            v[(std::size_t)r * w + c] = b;
        }
    }
    MotionScores s;
    const int upper_end = h / 2, lower_start = 2 * h / 3;
    double upper = 0, lower = 0, all = 0;
    for (int r = 0; r < h; ++r) {
        double row_sum = 0;
        for (int c = 0; c < w; ++c) {
            const std::size_t i = (std::size_t)r * w + c;
            row_sum += std::sqrt(u[i] * u[i] + v[i] * v[i]);
        }
        all += row_sum;
        if (r < upper_end) upper += row_sum;
        if (r >= lower_start) lower += row_sum;
    }
    s.motion = all / ((double)h * w);
    s.upper = upper / ((double)upper_end * w);
    s.lower = lower / ((double)(h - lower_start) * w);
    med_u = u;
    med_v = v;
    const float mu = median_in_place(med_u), mv = median_in_place(med_v);
    const int bh = h / grid, bw = w / grid;
    for (int by = 0; by < grid; ++by)
        for (int bx = 0; bx < grid; ++bx) {
            double sum = 0;
            for (int r = by * bh; r < (by + 1) * bh; ++r)
                for (int c = bx * bw; c < (bx + 1) * bw; ++c) {
                    const std::size_t i = (std::size_t)r * w + c;
                    const float du = u[i] - mu, dv = v[i] - mv;
                    sum += std::sqrt(du * du + dv * dv);
                }
            s.local = std::max(s.local, sum / ((double)bh * bw));
        }
    return s;
}

}  // namespace microexp
