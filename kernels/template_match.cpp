#include "template_match.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <vector>

namespace microexp {
namespace {

// ---------------------------------------------------------------------------------------------
// Template statistics and the score formula, written as OpenCV's common_matchTemplate and
// meanStdDev compute them (same operations, same order), so equal sums give equal floats.

struct TemplateStats {
    int cn = 1;
    double mean[4] = {0, 0, 0, 0};
    double inv_area = 1.0;
    double templ_norm = 0.0;
    bool flat = false;  // OpenCV returns a map of ones for a constant template
};

TemplateStats template_stats(const View8& t) {
    TemplateStats ts;
    ts.cn = t.cn;
    std::int64_t s[4] = {0, 0, 0, 0}, q[4] = {0, 0, 0, 0};
    for (int r = 0; r < t.rows; ++r) {
        const std::uint8_t* p = t.row(r);
        for (int i = 0; i < t.cols; ++i)
            for (int k = 0; k < t.cn; ++k) {
                const int v = p[i * t.cn + k];
                s[k] += v;
                q[k] += v * v;
            }
    }
    const double area = (double)t.rows * t.cols;
    const double scale = 1.0 / area;
    double norm = 0.0;
    for (int k = 0; k < t.cn; ++k) {
        const double m = (double)s[k] * scale;
        const double sd = std::sqrt(std::max((double)q[k] * scale - m * m, 0.0));
        ts.mean[k] = m;
        norm += sd * sd;
    }
    ts.inv_area = 1.0 / area;
    ts.flat = norm < DBL_EPSILON;
    ts.templ_norm = std::sqrt(norm) / std::sqrt(ts.inv_area);
    return ts;
}

// Sums over one template-sized window: correlation, per-channel sum, sum of squares.
struct WindowSums {
    std::int64_t cc = 0;
    std::int64_t s[4] = {0, 0, 0, 0};
    std::int64_t q = 0;
};

float score_from_sums(const WindowSums& w, const TemplateStats& ts) {
    if (ts.flat) return 1.f;
    double num = (double)(float)w.cc;  // OpenCV keeps the correlation plane in float32
    double wnd_mean2 = 0.0;
    for (int k = 0; k < ts.cn; ++k) {
        const double t = (double)w.s[k];
        wnd_mean2 += t * t;
        num -= t * ts.mean[k];
    }
    wnd_mean2 *= ts.inv_area;
    const double wnd_sum2 = (double)w.q;
    const double diff2 = std::max(wnd_sum2 - wnd_mean2, 0.0);
    double t;
    if (diff2 <= std::min(0.5, 10 * FLT_EPSILON * wnd_sum2))
        t = 0;  // a flat window: OpenCV scores it 0 rather than dividing rounding noise
    else
        t = std::sqrt(diff2) * ts.templ_norm;
    if (std::fabs(num) < t)
        num /= t;
    else if (std::fabs(num) < t * 1.125)
        num = num > 0 ? 1 : -1;
    else
        num = 0;
    return (float)num;
}

// ---------------------------------------------------------------------------------------------
// Direct window sums. Lanes of 48 bytes keep per-channel sums vectorisable for 1, 3 and 4
// channels (48 is a multiple of each), so lane l always holds channel l % cn.

constexpr int kLanes = 48;
constexpr int kChunk = 32768;  // 32768 * 255 * 255 < 2^31

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define MICROEXP_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define MICROEXP_CLONES
#endif

MICROEXP_CLONES
void accumulate_row(const std::uint8_t* img, const std::uint8_t* tpl, int n, std::int64_t& cc,
                    std::int64_t& q, std::int32_t* lanes) {
    for (int start = 0; start < n; start += kChunk) {
        const int len = std::min(kChunk, n - start);
        const std::uint8_t* a = img + start;
        const std::uint8_t* b = tpl + start;
        std::int32_t c = 0, s2 = 0;
        for (int i = 0; i < len; ++i) {
            const std::int32_t v = a[i];
            c += v * b[i];
            s2 += v * v;
        }
        cc += c;
        q += s2;
    }
    int i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (int l = 0; l < kLanes; ++l) lanes[l] += img[i + l];
    for (int l = 0; i < n; ++i, ++l) lanes[l] += img[i];
}

WindowSums window_sums(const View8& img, const View8& tpl, int x, int y) {
    WindowSums w;
    std::int32_t lanes[kLanes] = {0};
    const int n = tpl.cols * tpl.cn;
    for (int r = 0; r < tpl.rows; ++r) {
        accumulate_row(img.row(y + r) + (std::ptrdiff_t)x * img.cn, tpl.row(r), n, w.cc, w.q,
                       lanes);
        if (r % 4096 == 4095) {  // keep int32 lanes far from overflow on huge templates
            for (int l = 0; l < kLanes; ++l) w.s[l % tpl.cn] += lanes[l], lanes[l] = 0;
        }
    }
    for (int l = 0; l < kLanes; ++l) w.s[l % tpl.cn] += lanes[l];
    return w;
}

// ---------------------------------------------------------------------------------------------
// Pyramid helpers.

struct Plane {
    std::vector<std::uint8_t> pixels;
    View8 view;
};

// 2x2 box average with rounding; odd last row/column dropped.
void downsample(const View8& src, Plane& dst) {
    const int rows = src.rows / 2, cols = src.cols / 2, cn = src.cn;
    dst.pixels.resize((std::size_t)rows * cols * cn);
    for (int r = 0; r < rows; ++r) {
        const std::uint8_t* a = src.row(2 * r);
        const std::uint8_t* b = src.row(2 * r + 1);
        std::uint8_t* d = dst.pixels.data() + (std::size_t)r * cols * cn;
        for (int c = 0; c < cols; ++c)
            for (int k = 0; k < cn; ++k) {
                const int i0 = 2 * c * cn + k, i1 = i0 + cn;
                d[c * cn + k] = (std::uint8_t)((a[i0] + a[i1] + b[i0] + b[i1] + 2) >> 2);
            }
    }
    dst.view = View8{dst.pixels.data(), (std::ptrdiff_t)cols * cn, rows, cols, cn};
}

struct Level {
    View8 img, tpl;
    TemplateStats ts;
    int out_rows = 0, out_cols = 0;
    std::vector<float> cache;  // score per placement, NaN = not computed yet

    float score(int x, int y) {
        float& s = cache[(std::size_t)y * out_cols + x];
        if (std::isnan(s)) s = score_from_sums(window_sums(img, tpl, x, y), ts);
        return s;
    }
};

bool better(float s, int x, int y, float best, int bx, int by) {
    return s > best || (s == best && (y < by || (y == by && x < bx)));
}

// Best placement in a square window around (cx, cy), clipped to the level.
Match best_in_window(Level& lv, int cx, int cy, int radius) {
    Match m;
    m.score = -std::numeric_limits<float>::infinity();
    m.x = m.y = -1;
    for (int y = std::max(0, cy - radius); y <= std::min(lv.out_rows - 1, cy + radius); ++y)
        for (int x = std::max(0, cx - radius); x <= std::min(lv.out_cols - 1, cx + radius); ++x) {
            const float s = lv.score(x, y);
            if (m.x < 0 || better(s, x, y, m.score, m.x, m.y)) m.score = s, m.x = x, m.y = y;
        }
    return m;
}

// Vertex of the parabola through three equally spaced samples, as an offset in [-0.5, 0.5].
double parabola_offset(double left, double mid, double right) {
    const double denom = left - 2 * mid + right;
    if (!(denom < 0)) return 0.0;  // not a strict maximum (flat or NaN): no refinement
    return std::clamp(0.5 * (left - right) / denom, -0.5, 0.5);
}

}  // namespace

// ---------------------------------------------------------------------------------------------

void ccorr_direct(const View8& img, const View8& tpl, std::int64_t* out) {
    const int out_rows = img.rows - tpl.rows + 1, out_cols = img.cols - tpl.cols + 1;
    for (int y = 0; y < out_rows; ++y)
        for (int x = 0; x < out_cols; ++x)
            out[(std::size_t)y * out_cols + x] = window_sums(img, tpl, x, y).cc;
}

void ncc_map_from_ccorr(const View8& img, const View8& tpl, const std::int64_t* ccorr,
                        float* out) {
    const int rows = img.rows, cols = img.cols, cn = img.cn;
    const int out_rows = rows - tpl.rows + 1, out_cols = cols - tpl.cols + 1;
    const TemplateStats ts = template_stats(tpl);
    // Integral images: per-channel sums and the all-channel sum of squares.
    const std::size_t w1 = (std::size_t)cols + 1;
    thread_local std::vector<std::int64_t> sum, sq;  // reused across calls: no page faults
    sum.assign((std::size_t)(rows + 1) * w1 * cn, 0);
    sq.assign((std::size_t)(rows + 1) * w1, 0);
    for (int r = 0; r < rows; ++r) {
        const std::uint8_t* p = img.row(r);
        std::int64_t run[4] = {0, 0, 0, 0}, runq = 0;
        for (int c = 0; c < cols; ++c) {
            for (int k = 0; k < cn; ++k) {
                const int v = p[c * cn + k];
                run[k] += v;
                runq += v * v;
                sum[((r + 1) * w1 + c + 1) * cn + k] = sum[(r * w1 + c + 1) * cn + k] + run[k];
            }
            sq[(r + 1) * w1 + c + 1] = sq[r * w1 + c + 1] + runq;
        }
    }
    const int h = tpl.rows, w = tpl.cols;
    for (int y = 0; y < out_rows; ++y)
        for (int x = 0; x < out_cols; ++x) {
            WindowSums ws;
            ws.cc = ccorr[(std::size_t)y * out_cols + x];
            for (int k = 0; k < cn; ++k)
                ws.s[k] = sum[((y + h) * w1 + x + w) * cn + k] - sum[(y * w1 + x + w) * cn + k] -
                          sum[((y + h) * w1 + x) * cn + k] + sum[(y * w1 + x) * cn + k];
            ws.q = sq[(y + h) * w1 + x + w] - sq[y * w1 + x + w] - sq[(y + h) * w1 + x] +
                   sq[y * w1 + x];
            out[(std::size_t)y * out_cols + x] = score_from_sums(ws, ts);
        }
}

Match match_pyramid(const View8& img, const View8& tpl, bool subpixel) {
    // Depth: halve while the template keeps at least 16 px on its short side and there are at
    // least two placements per axis left; at most four halvings (16x).
    int depth = 0;
    while (depth < 4 && (std::min(tpl.rows, tpl.cols) >> (depth + 1)) >= 16 &&
           ((img.rows >> (depth + 1)) - (tpl.rows >> (depth + 1))) >= 1 &&
           ((img.cols >> (depth + 1)) - (tpl.cols >> (depth + 1))) >= 1)
        ++depth;

    thread_local std::vector<Plane> img_planes, tpl_planes;
    thread_local std::vector<Level> levels;
    img_planes.resize(depth + 1);
    tpl_planes.resize(depth + 1);
    levels.resize(depth + 1);
    for (int l = 0; l <= depth; ++l) {
        Level& lv = levels[l];
        if (l == 0) {
            lv.img = img;
            lv.tpl = tpl;
        } else {
            downsample(levels[l - 1].img, img_planes[l]);
            downsample(levels[l - 1].tpl, tpl_planes[l]);
            lv.img = img_planes[l].view;
            lv.tpl = tpl_planes[l].view;
        }
        lv.ts = template_stats(lv.tpl);
        lv.out_rows = lv.img.rows - lv.tpl.rows + 1;
        lv.out_cols = lv.img.cols - lv.tpl.cols + 1;
        lv.cache.assign((std::size_t)lv.out_rows * lv.out_cols,
                        std::numeric_limits<float>::quiet_NaN());
    }

    // Coarsest level: every placement; keep the three best local maxima as seeds.
    Level& top = levels[depth];
    std::vector<Match> seeds;
    for (int y = 0; y < top.out_rows; ++y)
        for (int x = 0; x < top.out_cols; ++x) top.score(x, y);
    for (int y = 0; y < top.out_rows; ++y)
        for (int x = 0; x < top.out_cols; ++x) {
            const float s = top.cache[(std::size_t)y * top.out_cols + x];
            bool is_peak = true;
            for (int dy = -1; dy <= 1 && is_peak; ++dy)
                for (int dx = -1; dx <= 1; ++dx) {
                    const int xx = x + dx, yy = y + dy;
                    if ((dx || dy) && xx >= 0 && yy >= 0 && xx < top.out_cols &&
                        yy < top.out_rows && top.cache[(std::size_t)yy * top.out_cols + xx] > s) {
                        is_peak = false;
                        break;
                    }
                }
            if (is_peak) {
                Match m;
                m.x = x, m.y = y, m.score = s;
                seeds.push_back(m);
            }
        }
    std::stable_sort(seeds.begin(), seeds.end(),
                     [](const Match& a, const Match& b) { return a.score > b.score; });
    if (seeds.size() > 3) seeds.resize(3);

    Match best;
    best.score = -std::numeric_limits<float>::infinity();
    best.x = best.y = -1;
    for (Match m : seeds) {
        // Seeds far below the strongest coarse peak are distractors; skip their refinement.
        if (m.score < seeds[0].score - 0.15f) continue;
        for (int l = depth - 1; l >= 0; --l) {
            m = best_in_window(levels[l], 2 * m.x, 2 * m.y, l == 0 ? 1 : 2);
        }
        // Hill-climb at full resolution until the placement is a local maximum.
        Level& fine = levels[0];
        for (int step = 0; step < 64; ++step) {
            const Match n = best_in_window(fine, m.x, m.y, 1);
            if (n.x == m.x && n.y == m.y) break;
            m = n;
        }
        if (best.x < 0 || better(m.score, m.x, m.y, best.score, best.x, best.y)) best = m;
    }
    best.sub_x = best.x;
    best.sub_y = best.y;
    if (subpixel) {
        Level& fine = levels[0];
        if (best.x > 0 && best.x < fine.out_cols - 1)
            best.sub_x += parabola_offset(fine.score(best.x - 1, best.y), best.score,
                                          fine.score(best.x + 1, best.y));
        if (best.y > 0 && best.y < fine.out_rows - 1)
            best.sub_y += parabola_offset(fine.score(best.x, best.y - 1), best.score,
                                          fine.score(best.x, best.y + 1));
    }
    return best;
}

}  // namespace microexp
