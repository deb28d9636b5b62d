#include "resize.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <vector>

namespace microexp {
namespace {

constexpr int kCoefBits = 11;
constexpr int kCoefScale = 1 << kCoefBits;  // OpenCV's INTER_RESIZE_COEF_SCALE

// Source index and the two fixed-point weights of each destination index (OpenCV's
// coordinate mapping: centres aligned, computed in float, clamped at the borders).
void linear_taps(int src_size, int dst_size, std::vector<int>& index, std::vector<int>& weight) {
    index.resize(dst_size);
    weight.resize(2 * (std::size_t)dst_size);
    const double scale = 1.0 / ((double)dst_size / src_size);
    for (int d = 0; d < dst_size; ++d) {
        float f = (float)((d + 0.5) * scale - 0.5);
        int s = (int)std::floor(f);
        f -= (float)s;
        if (s < 0) f = 0.f, s = 0;
        if (s >= src_size - 1) f = 0.f, s = src_size - 1;
        const int w0 = (int)std::lrintf((1.f - f) * kCoefScale);
        index[d] = s;
        weight[2 * d] = w0;
        weight[2 * d + 1] = kCoefScale - w0;
    }
}

inline std::uint8_t round_to_u8(float v) {
    const long r = std::lrintf(v);  // half to even, like cvRound
    return (std::uint8_t)std::clamp(r, 0L, 255L);
}

struct AreaTap {
    int src, dst;
    float alpha;
};

// OpenCV's computeResizeAreaTab: the source cells each destination cell overlaps, with weights.
std::vector<AreaTap> area_taps(int src_size, int dst_size, double scale) {
    std::vector<AreaTap> tab;
    tab.reserve(2 * (std::size_t)src_size + 2);
    for (int d = 0; d < dst_size; ++d) {
        const double f1 = d * scale, f2 = f1 + scale;
        const double cell = std::min(scale, src_size - f1);
        int s1 = (int)std::ceil(f1), s2 = (int)std::floor(f2);
        s2 = std::min(s2, src_size - 1);
        s1 = std::min(s1, s2);
        if (s1 - f1 > 1e-3) tab.push_back({s1 - 1, d, (float)((s1 - f1) / cell)});
        for (int s = s1; s < s2; ++s) tab.push_back({s, d, (float)(1.0 / cell)});
        if (f2 - s2 > 1e-3)
            tab.push_back({s2, d, (float)(std::min(std::min(f2 - s2, 1.0), cell) / cell)});
    }
    return tab;
}

struct AreaScale {
    double scale;
    int integer;
    bool exact;
};

AreaScale area_scale(int src_size, int dst_size) {
    const double scale = 1.0 / ((double)dst_size / src_size);
    const int integer = (int)std::lrint(scale);
    return {scale, integer, std::fabs(scale - integer) < DBL_EPSILON};
}

// Mean of a kx x ky cell as OpenCV's integer-factor INTER_AREA rounds it: its 2x2 vector path
// rounds half up; the general path rounds the float mean half to even.
inline std::uint8_t area_mean_u8(int sum, int kx, int ky, float inv_area) {
    return (kx == 2 && ky == 2) ? (std::uint8_t)((sum + 2) >> 2) : round_to_u8((float)sum * inv_area);
}

}  // namespace

namespace {

// One source row resized horizontally: out[d * CN + k] = s[o0[d] + k] * w[2d] + s[o1[d] + k] *
// w[2d + 1]. The channel count is a template parameter so that the inner loop unrolls.
template <int CN>
void horizontal_taps(const std::uint8_t* s, const int* o0, const int* o1, const int* w, int dst_cols,
                     int* out) {
    for (int d = 0; d < dst_cols; ++d) {
        const std::uint8_t* a = s + o0[d];
        const std::uint8_t* b = s + o1[d];
        const int w0 = w[2 * d], w1 = w[2 * d + 1];
        for (int k = 0; k < CN; ++k) out[d * CN + k] = a[k] * w0 + b[k] * w1;
    }
}

}  // namespace

void resize_linear_u8(const View8& src, std::uint8_t* dst, std::ptrdiff_t dst_stride, int dst_rows,
                      int dst_cols) {
    const int cn = src.cn;
    thread_local std::vector<int> xi, xw, yi, yw, o0, o1, rows_buf;  // reused: no per-call allocation
    linear_taps(src.cols, dst_cols, xi, xw);
    linear_taps(src.rows, dst_rows, yi, yw);
    o0.resize(dst_cols);
    o1.resize(dst_cols);
    for (int d = 0; d < dst_cols; ++d) o0[d] = xi[d] * cn, o1[d] = std::min(xi[d] + 1, src.cols - 1) * cn;
    const int width = dst_cols * cn;
    // Horizontally resized source rows, kept for the two rows the current output row blends.
    rows_buf.resize(2 * (std::size_t)width);
    int cached[2] = {-1, -1};
    auto horizontal = [&](int sy, int* out) {
        const std::uint8_t* s = src.row(sy);
        switch (cn) {  // the bindings allow 1 to 4 channels
            case 1: horizontal_taps<1>(s, o0.data(), o1.data(), xw.data(), dst_cols, out); break;
            case 2: horizontal_taps<2>(s, o0.data(), o1.data(), xw.data(), dst_cols, out); break;
            case 3: horizontal_taps<3>(s, o0.data(), o1.data(), xw.data(), dst_cols, out); break;
            default: horizontal_taps<4>(s, o0.data(), o1.data(), xw.data(), dst_cols, out); break;
        }
    };
    for (int dy = 0; dy < dst_rows; ++dy) {
        const int sy0 = yi[dy], sy1 = std::min(yi[dy] + 1, src.rows - 1);
        // Fetch a horizontally resized row, evicting the slot that does not hold `keep`.
        auto row_for = [&](int want, int keep) {
            for (int slot = 0; slot < 2; ++slot)
                if (cached[slot] == want) return rows_buf.data() + slot * width;
            const int slot = cached[0] == keep ? 1 : 0;
            horizontal(want, rows_buf.data() + slot * width);
            cached[slot] = want;
            return rows_buf.data() + slot * width;
        };
        const int* r[2];
        r[0] = row_for(sy0, sy1);
        r[1] = row_for(sy1, sy0);
        const int b0 = yw[2 * dy], b1 = yw[2 * dy + 1];
        std::uint8_t* d = dst + dy * dst_stride;
        // OpenCV's vector form of the vertical blend: both rows pre-shifted by 4 bits and
        // multiplied keeping the high 16 bits, then rounded by 2 bits.
        for (int x = 0; x < width; ++x) {
            const int v = (((b0 * (r[0][x] >> 4)) >> 16) + ((b1 * (r[1][x] >> 4)) >> 16) + 2) >> 2;
            d[x] = (std::uint8_t)std::clamp(v, 0, 255);
        }
    }
}

namespace {

// The fractional-weight tables of one (rows, cols) -> (dst_rows, dst_cols) resize, with each
// destination column's run of horizontal taps; kept between calls of the same sizes.
struct AreaPlan {
    int rows = -1, cols = -1, dst_rows = -1, dst_cols = -1;
    std::vector<AreaTap> xtab, ytab;
    std::vector<int> x_begin;  // taps of destination column d: xtab[x_begin[d] .. x_begin[d + 1])

    void prepare(int r, int c, int dr, int dc) {
        if (r == rows && c == cols && dr == dst_rows && dc == dst_cols) return;
        rows = r, cols = c, dst_rows = dr, dst_cols = dc;
        xtab = area_taps(c, dc, area_scale(c, dc).scale);
        ytab = area_taps(r, dr, area_scale(r, dr).scale);
        x_begin.assign(dc + 1, (int)xtab.size());
        for (int i = (int)xtab.size() - 1; i >= 0; --i) x_begin[xtab[i].dst] = i;
        for (int d = dc - 1; d >= 0; --d) x_begin[d] = std::min(x_begin[d], x_begin[d + 1]);
    }
};

// OpenCV's general INTER_AREA (computeResizeAreaTab's fractional weights, each source row
// weighed horizontally, then the rows blended into their destination row), one channel at a
// time: channel k's pixel (r, c) is channels[k][r * row_stride + c * pixel_stride], so this
// reads separate planes (pixel_stride 1) and interleaved images (pixel_stride = cn) alike.
// Per output value the float operations and their order are OpenCV's, so the bytes are; a
// source row on a cell boundary is weighed once for both cells it feeds.
void resize_area_fractional(const std::uint8_t* const* channels, int cn, int rows, int cols,
                            std::ptrdiff_t row_stride, int pixel_stride, std::uint8_t* dst, int dst_rows,
                            int dst_cols) {
    thread_local AreaPlan plan;
    thread_local std::vector<float> buf, sum;
    AreaPlan& p = plan;
    p.prepare(rows, cols, dst_rows, dst_cols);
    buf.resize(dst_cols), sum.resize(dst_cols);
    float* b = buf.data();
    float* acc = sum.data();
    for (int k = 0; k < cn; ++k) {
        auto flush = [&](int dy) {
            std::uint8_t* d = dst + (std::size_t)dy * dst_cols * cn + k;
            for (int x = 0; x < dst_cols; ++x) d[(std::size_t)x * cn] = round_to_u8(acc[x]);
        };
        int prev_dy = p.ytab.empty() ? 0 : p.ytab[0].dst, weighed_row = -1;
        std::fill(acc, acc + dst_cols, 0.f);
        for (const AreaTap& yt : p.ytab) {
            if (yt.src != weighed_row) {
                const std::uint8_t* s = channels[k] + yt.src * row_stride;
                for (int d = 0; d < dst_cols; ++d) {
                    float v = 0.f;
                    for (int i = p.x_begin[d]; i < p.x_begin[d + 1]; ++i)
                        v += (float)s[p.xtab[i].src * pixel_stride] * p.xtab[i].alpha;
                    b[d] = v;
                }
                weighed_row = yt.src;
            }
            const float beta = yt.alpha;
            if (yt.dst != prev_dy) {
                flush(prev_dy);
                for (int x = 0; x < dst_cols; ++x) acc[x] = beta * b[x];
                prev_dy = yt.dst;
            } else {
                for (int x = 0; x < dst_cols; ++x) acc[x] += beta * b[x];
            }
        }
        flush(prev_dy);
    }
}

}  // namespace

void resize_area_u8(const View8& src, std::uint8_t* dst, int dst_rows, int dst_cols) {
    const int cn = src.cn;
    const AreaScale sx = area_scale(src.cols, dst_cols), sy = area_scale(src.rows, dst_rows);
    if (sx.exact && sy.exact) {
        const int kx = sx.integer, ky = sy.integer;
        const float inv_area = 1.f / (float)(kx * ky);
        for (int dy = 0; dy < dst_rows; ++dy)
            for (int dx = 0; dx < dst_cols; ++dx)
                for (int k = 0; k < cn; ++k) {
                    int sum = 0;
                    for (int yy = 0; yy < ky; ++yy) {
                        const std::uint8_t* s = src.row(dy * ky + yy) + (dx * kx) * cn + k;
                        for (int xx = 0; xx < kx; ++xx) sum += s[xx * cn];
                    }
                    dst[(dy * dst_cols + dx) * cn + k] = area_mean_u8(sum, kx, ky, inv_area);
                }
        return;
    }
    // Any other factor: the fractional-weight path, reading the channels in place.
    const std::uint8_t* channels[4];
    for (int k = 0; k < cn; ++k) channels[k] = src.data + k;
    resize_area_fractional(channels, cn, src.rows, src.cols, src.stride, cn, dst, dst_rows, dst_cols);
}


void resize_area_u8_planes(const std::uint8_t* const* planes, int cn, int rows, int cols,
                           std::uint8_t* dst, int dst_rows, int dst_cols) {
    const AreaScale sx = area_scale(cols, dst_cols), sy = area_scale(rows, dst_rows);
    if (!sx.exact || !sy.exact)
        return resize_area_fractional(planes, cn, rows, cols, cols, 1, dst, dst_rows, dst_cols);
    const int kx = sx.integer, ky = sy.integer;
    const float inv_area = 1.f / (float)(kx * ky);
    // Column sums of each band of ky rows, a whole row at a time (the compiler vectorises
    // these adds), then kx neighbouring column sums per output pixel.
    thread_local std::vector<std::int32_t> acc;
    acc.resize((std::size_t)cn * cols);
    for (int dy = 0; dy < dst_rows; ++dy) {
        std::fill(acc.begin(), acc.end(), 0);
        for (int k = 0; k < cn; ++k) {
            std::int32_t* a = acc.data() + (std::size_t)k * cols;
            for (int yy = 0; yy < ky; ++yy) {
                const std::uint8_t* p = planes[k] + (std::size_t)(dy * ky + yy) * cols;
                for (int c = 0; c < cols; ++c) a[c] += p[c];
            }
        }
        for (int dx = 0; dx < dst_cols; ++dx)
            for (int k = 0; k < cn; ++k) {
                const std::int32_t* a = acc.data() + (std::size_t)k * cols + dx * kx;
                std::int32_t sum = 0;
                for (int xx = 0; xx < kx; ++xx) sum += a[xx];
                dst[((std::size_t)dy * dst_cols + dx) * cn + k] = area_mean_u8(sum, kx, ky, inv_area);
            }
    }
}

namespace {

// Overlap weights of each destination cell with the source cells along one axis, flat:
// cell d reads index[begin[d] .. begin[d + 1]) with weight[...] (fractions of the cell).
struct AreaWeights {
    int src_size = -1, dst_size = -1;
    std::vector<int> begin, index;
    std::vector<double> weight;

    void prepare(int s_size, int d_size) {
        if (s_size == src_size && d_size == dst_size) return;
        src_size = s_size, dst_size = d_size;
        begin.assign(1, 0), index.clear(), weight.clear();
        const double scale = (double)s_size / d_size;
        for (int d = 0; d < d_size; ++d) {
            const double a = d * scale, b = std::min(a + scale, (double)s_size);
            for (int s = (int)std::floor(a); s < s_size && s < b; ++s) {
                const double w = std::min(b, s + 1.0) - std::max(a, (double)s);
                if (w > 1e-12) index.push_back(s), weight.push_back(w / (b - a));
            }
            begin.push_back((int)index.size());
        }
    }
};

}  // namespace

void resize_area_f32(const float* src, int src_rows, int src_cols, float* dst, int dst_rows,
                     int dst_cols, double offset, double factor) {
    thread_local AreaWeights tx, ty;
    thread_local std::vector<double> row, col_sum;
    const AreaScale ax = area_scale(src_cols, dst_cols), ay = area_scale(src_rows, dst_rows);
    row.resize(dst_cols);
    if (ax.exact && ay.exact) {
        // Integer factors: plain block means (column sums over the band, then kx at a time).
        const int kx = ax.integer, ky = ay.integer;
        const double inv = 1.0 / ((double)kx * ky);
        col_sum.resize(src_cols);
        for (int dy = 0; dy < dst_rows; ++dy) {
            std::fill(col_sum.begin(), col_sum.end(), 0.0);
            for (int yy = 0; yy < ky; ++yy) {
                const float* s = src + (std::size_t)(dy * ky + yy) * src_cols;
                for (int c = 0; c < src_cols; ++c) col_sum[c] += s[c];
            }
            for (int dx = 0; dx < dst_cols; ++dx) {
                double sum = 0.0;
                for (int xx = 0; xx < kx; ++xx) sum += col_sum[dx * kx + xx];
                dst[(std::size_t)dy * dst_cols + dx] = (float)((sum * inv - offset) * factor);
            }
        }
        return;
    }
    tx.prepare(src_cols, dst_cols);
    ty.prepare(src_rows, dst_rows);
    for (int dy = 0; dy < dst_rows; ++dy) {
        std::fill(row.begin(), row.end(), 0.0);
        for (int j = ty.begin[dy]; j < ty.begin[dy + 1]; ++j) {
            const float* s = src + (std::size_t)ty.index[j] * src_cols;
            const double w_y = ty.weight[j];
            for (int dx = 0; dx < dst_cols; ++dx) {
                double acc = 0.0;
                for (int i = tx.begin[dx]; i < tx.begin[dx + 1]; ++i) acc += tx.weight[i] * s[tx.index[i]];
                row[dx] += w_y * acc;
            }
        }
        for (int dx = 0; dx < dst_cols; ++dx)
            dst[(std::size_t)dy * dst_cols + dx] = (float)((row[dx] - offset) * factor);
    }
}

}  // namespace microexp
