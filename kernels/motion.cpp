#include "motion.hpp"

#include "flow_scan.hpp"

#include <algorithm>
#include <cmath>
#include <initializer_list>
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

// The largest mean over a grid x grid partition of an h x w map (blocks of h / grid x w / grid,
// remainders dropped).
double largest_block_mean(const std::vector<float>& map, int h, int w, int grid) {
    const int bh = h / grid, bw = w / grid;
    double best = 0;
    for (int by = 0; by < grid; ++by)
        for (int bx = 0; bx < grid; ++bx) {
            double sum = 0;
            for (int r = by * bh; r < (by + 1) * bh; ++r)
                for (int c = bx * bw; c < (bx + 1) * bw; ++c) sum += map[(std::size_t)r * w + c];
            best = std::max(best, sum / ((double)bh * bw));
        }
    return best;
}

// Solves the symmetric 3x3 system m x = b by Cramer's rule; false when it is singular.
bool solve3(const double m[3][3], const double b[3], double x[3]) {
    auto det3 = [](double a, double b_, double c, double d, double e, double f, double g, double h, double i) {
        return a * (e * i - f * h) - b_ * (d * i - f * g) + c * (d * h - e * g);
    };
    const double det = det3(m[0][0], m[0][1], m[0][2], m[1][0], m[1][1], m[1][2], m[2][0], m[2][1], m[2][2]);
    if (!(std::abs(det) > 1e-12)) return false;
    for (int k = 0; k < 3; ++k) {
        double c[3][3];
        for (int r = 0; r < 3; ++r)
            for (int q = 0; q < 3; ++q) c[r][q] = q == k ? b[r] : m[r][q];
        x[k] = det3(c[0][0], c[0][1], c[0][2], c[1][0], c[1][1], c[1][2], c[2][0], c[2][1], c[2][2]) / det;
    }
    return true;
}

// The magnitude of (u, v) minus their least-squares affine fit over the h x w sample grid
// (sample coordinates, centred so the normal equations stay well conditioned), into `out`.
void affine_residual(const std::vector<float>& u, const std::vector<float>& v, int h, int w,
                     std::vector<float>& out) {
    const double cx = (w - 1) / 2.0, cy = (h - 1) / 2.0;
    double m[3][3] = {{0, 0, 0}, {0, 0, 0}, {0, 0, 0}}, bu[3] = {0, 0, 0}, bv[3] = {0, 0, 0};
    for (int r = 0; r < h; ++r)
        for (int c = 0; c < w; ++c) {
            const double p[3] = {1.0, c - cx, r - cy};
            const std::size_t i = (std::size_t)r * w + c;
            for (int a = 0; a < 3; ++a) {
                for (int b = 0; b < 3; ++b) m[a][b] += p[a] * p[b];
                bu[a] += p[a] * u[i];
                bv[a] += p[a] * v[i];
            }
        }
    double au[3] = {0, 0, 0}, av[3] = {0, 0, 0};
    if (!solve3(m, bu, au) || !solve3(m, bv, av)) {  // one row or column of samples: a translation fit
        const double n = (double)h * w;
        au[0] = bu[0] / n;
        av[0] = bv[0] / n;
        au[1] = au[2] = av[1] = av[2] = 0;
    }
    out.resize(u.size());
    for (int r = 0; r < h; ++r)
        for (int c = 0; c < w; ++c) {
            const std::size_t i = (std::size_t)r * w + c;
            const double x = c - cx, y = r - cy;
            const double du = u[i] - (au[0] + au[1] * x + au[2] * y), dv = v[i] - (av[0] + av[1] * x + av[2] * y);
            out[i] = (float)std::sqrt(du * du + dv * dv);
        }
}

}  // namespace

MotionScores region_motion(const ViewF& flow, int step, int grid, int nonrigid_grid, bool zero_nonfinite) {
    const int h = sample_count(flow.rows, step), w = sample_count(flow.cols, step);
    thread_local std::vector<float> u, v, med_u, med_v;  // reused: no per-frame allocation
    u.resize((std::size_t)h * w);
    v.resize(u.size());
    for (int r = 0; r < h; ++r) {
        const float* row = flow.row(r * step);
        for (int c = 0; c < w; ++c) {
            const std::ptrdiff_t x = (std::ptrdiff_t)c * step;
            float a = row[2 * x], b = row[2 * x + 1];
            if (zero_nonfinite && !(std::isfinite(a) && std::isfinite(b))) a = b = 0.f;
            u[(std::size_t)r * w + c] = a;
            v[(std::size_t)r * w + c] = b;
        }
    }
    // Every score is proportional to the flow: huge samples are divided by a power of two
    // (exactly) so that squares stay finite, and the scores multiplied back in double.
    const int shift = std::max(flow_shift(u.data(), u.size()), flow_shift(v.data(), v.size()));
    if (shift) {
        const float factor = std::ldexp(1.0f, -shift);
        for (std::size_t i = 0; i < u.size(); ++i) u[i] *= factor, v[i] *= factor;
    }
    MotionScores s;
    // With a single sampled row, that row is both the upper and the lower part.
    const int upper_end = std::max(1, h / 2), lower_start = 2 * h / 3;
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
    // The median-removed magnitude, once; then the largest block mean on each partition.
    for (std::size_t i = 0; i < u.size(); ++i) {
        const float du = u[i] - mu, dv = v[i] - mv;
        med_u[i] = std::sqrt(du * du + dv * dv);
    }
    s.local = largest_block_mean(med_u, h, w, grid);
    if (nonrigid_grid > 0) {
        affine_residual(u, v, h, w, med_v);
        s.nonrigid = largest_block_mean(med_v, h, w, nonrigid_grid);
    }
    if (shift)
        for (double* score : {&s.motion, &s.upper, &s.lower, &s.local, &s.nonrigid}) *score = std::ldexp(*score, shift);
    return s;
}

}  // namespace microexp
