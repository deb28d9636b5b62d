// Farneback flow with OpenCV's arithmetic (see farneback.hpp). The algorithm, per pyramid
// level from coarse to fine: expand both images locally as quadratic polynomials (separable
// Gaussian-weighted filters), then repeat: build per pixel the 2x2 system that the displaced
// polynomials imply, average it over a winsize box, solve it for the displacement.
#include "farneback.hpp"

#include "farneback_rows.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

namespace microexp {

namespace {

constexpr int kMinLevelSize = 32;  // OpenCV stops adding levels below this size
constexpr int kBorder = 5;         // pixels near the edge get down-weighted equations
constexpr float kBorderWeight[kBorder] = {0.14f, 0.14f, 0.4472f, 0.4472f, 0.4472f};

inline int reflect101(int i, int n) {
    if (n == 1) return 0;
    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * n - 2 - i;
    return i;
}

// cv::getGaussianKernel for a float kernel (OpenCV keeps a fixed table for sigma <= 0).
std::vector<float> gaussian_kernel(int n, double sigma) {
    std::vector<float> k(n);
    if (sigma <= 0 && n == 3) return {0.25f, 0.5f, 0.25f};
    const double s = sigma > 0 ? sigma : ((n - 1) * 0.5 - 1) * 0.3 + 0.8;
    const double scale2 = -0.5 / (s * s);
    float sum = 0;
    for (int i = 0; i < n; ++i) {
        const double x = i - (n - 1) * 0.5;
        k[i] = (float)std::exp(scale2 * x * x);
        sum += k[i];
    }
    const float inv = 1.f / sum;
    for (float& v : k) v *= inv;
    return k;
}

// Separable symmetric filter with reflect-101 borders: rows first, then columns. Loops run
// over x innermost so that they vectorise.
void blur(const float* src, int rows, int cols, const std::vector<float>& k, float* tmp, float* dst,
          std::vector<float>& pad) {
    const int r = (int)k.size() / 2;
    pad.resize(cols + 2 * r);
    for (int y = 0; y < rows; ++y) {
        const float* s = src + (std::ptrdiff_t)y * cols;
        std::memcpy(pad.data() + r, s, cols * sizeof(float));
        for (int j = 1; j <= r; ++j) {
            pad[r - j] = s[reflect101(-j, cols)];
            pad[r + cols - 1 + j] = s[reflect101(cols - 1 + j, cols)];
        }
        const float* p = pad.data() + r;
        float* t = tmp + (std::ptrdiff_t)y * cols;
        for (int x = 0; x < cols; ++x) t[x] = k[r] * p[x];
        for (int j = 1; j <= r; ++j) {
            const float kj = k[r + j];
            for (int x = 0; x < cols; ++x) t[x] += kj * (p[x + j] + p[x - j]);
        }
    }
    for (int y = 0; y < rows; ++y) {
        float* d = dst + (std::ptrdiff_t)y * cols;
        const float* c = tmp + (std::ptrdiff_t)y * cols;
        for (int x = 0; x < cols; ++x) d[x] = k[r] * c[x];
        for (int j = 1; j <= r; ++j) {
            const float* a = tmp + (std::ptrdiff_t)reflect101(y - j, rows) * cols;
            const float* b = tmp + (std::ptrdiff_t)reflect101(y + j, rows) * cols;
            const float kj = k[r + j];
            for (int x = 0; x < cols; ++x) d[x] += kj * (a[x] + b[x]);
        }
    }
}

// Source index and weight of each destination position, as cv::resize INTER_LINEAR sets them.
void linear_taps(int src, int dst, std::vector<int>& index, std::vector<float>& weight) {
    index.resize(dst);
    weight.resize(dst);
    const double scale = (double)src / dst;
    for (int d = 0; d < dst; ++d) {
        float f = (float)((d + 0.5) * scale - 0.5);
        int i = (int)std::floor(f);
        f -= i;
        if (i < 0) f = 0, i = 0;
        if (i >= src - 1) f = 0, i = src - 1;
        index[d] = i;
        weight[d] = f;
    }
}

// One source row filtered horizontally, `CN` interleaved channels known at compile time so
// that the channel loop unrolls (1: image pyramid, 2: flow).
template <int CN>
void resize_row_linear(const float* s, int scols, const ResizeScratch& t, int dcols, float* out) {
    const int* xi = t.xi.data();
    const float* xw = t.xw.data();
    for (int x = 0; x < dcols; ++x) {
        const int i = xi[x], i1 = std::min(i + 1, scols - 1);
        const float w = xw[x];
        for (int c = 0; c < CN; ++c) out[x * CN + c] = s[i * CN + c] * (1.f - w) + s[i1 * CN + c] * w;
    }
}

// cv::resize INTER_LINEAR for float images of `cn` (1 or 2) interleaved channels. Each source
// row is filtered horizontally once, however many destination rows use it.
void resize_linear_f32(const float* src, int srows, int scols, float* dst, int drows, int dcols, int cn,
                       ResizeScratch& t) {
    linear_taps(scols, dcols, t.xi, t.xw);
    linear_taps(srows, drows, t.yi, t.yw);
    const std::ptrdiff_t n = (std::ptrdiff_t)dcols * cn;
    t.rows.resize(2 * n);
    float* h[2] = {t.rows.data(), t.rows.data() + n};
    int have[2] = {-1, -1};
    auto hpass = [&](int y, float* out) {
        const float* s = src + (std::ptrdiff_t)y * scols * cn;
        if (cn == 1)
            resize_row_linear<1>(s, scols, t, dcols, out);
        else
            resize_row_linear<2>(s, scols, t, dcols, out);
    };
    for (int y = 0; y < drows; ++y) {
        const int y0 = t.yi[y], y1 = std::min(y0 + 1, srows - 1);
        if (have[0] != y0) {
            if (have[1] == y0) {
                std::swap(h[0], h[1]);
                std::swap(have[0], have[1]);
            } else {
                hpass(y0, h[0]);
                have[0] = y0;
            }
        }
        if (have[1] != y1) {
            hpass(y1, h[1]);
            have[1] = y1;
        }
        const float w = t.yw[y];
        float* d = dst + (std::ptrdiff_t)y * n;
        for (std::ptrdiff_t x = 0; x < n; ++x) d[x] = h[0][x] * (1.f - w) + h[1][x] * w;
    }
}

}  // namespace

namespace {
const FarnebackRows& pick_rows(bool portable) {
    if (portable) return farneback_rows_generic();
#if defined(MICROEXP_X86_DISPATCH)
    static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (avx2) return farneback_rows_avx2();
#endif
    return farneback_rows_generic();
}
}  // namespace

namespace {
// OpenCV's effective sigma and normalised weights (FarnebackPrepareGaussian).
std::vector<float> expansion_weights(int n, double& sigma) {
    if (sigma < FLT_EPSILON) sigma = n * 0.3;
    std::vector<float> g(2 * n + 1);
    double sum = 0;
    for (int x = -n; x <= n; ++x) {
        g[x + n] = (float)std::exp(-x * x / (2 * sigma * sigma));
        sum += g[x + n];
    }
    for (float& v : g) v = (float)(v / sum);
    return g;
}
}  // namespace

bool expansion_invertible(int n, double sigma) {
    const std::vector<float> g = expansion_weights(n, sigma);
    // The 6x6 Gram matrix of (1, x, y, x^2, y^2, xy) as OpenCV fills it: float products
    // accumulated in double.
    double G[6][6] = {};
    for (int y = -n; y <= n; ++y)
        for (int x = -n; x <= n; ++x) {
            const float w = g[y + n] * g[x + n];
            const float fx = (float)x, fy = (float)y;
            G[0][0] += w;
            G[1][1] += w * fx * fx;
            G[3][3] += w * fx * fx * fx * fx;
            G[5][5] += w * fx * fx * fy * fy;
        }
    G[2][2] = G[0][3] = G[0][4] = G[3][0] = G[4][0] = G[1][1];
    G[4][4] = G[3][3];
    G[3][4] = G[4][3] = G[5][5];
    // Cholesky with OpenCV's test on each pivot (L keeps 1/sqrt(pivot) on its diagonal).
    double L[6][6] = {};
    for (int i = 0; i < 6; ++i) {
        for (int j = 0; j < i; ++j) {
            double t = G[i][j];
            for (int k = 0; k < j; ++k) t -= L[i][k] * L[j][k];
            L[i][j] = t * L[j][j];
        }
        double pivot = G[i][i];
        for (int k = 0; k < i; ++k) pivot -= L[i][k] * L[i][k];
        if (!(pivot >= 2.220446049250313e-16)) return false;  // DBL_EPSILON
        L[i][i] = 1.0 / std::sqrt(pivot);
    }
    return true;
}

double smallest_invertible_sigma(int n) {
    double lo = FLT_EPSILON, hi = 2.0;  // not invertible at lo (for n >= 1), invertible at hi
    if (expansion_invertible(n, lo)) return lo;
    while (hi - lo > 1e-4) {
        const double mid = 0.5 * (lo + hi);
        (expansion_invertible(n, mid) ? hi : lo) = mid;
    }
    return hi;
}

Farneback::Farneback(const FarnebackParams& p) : p_(p), rows_fn_(&pick_rows(p.portable)) {
    const int n = p.poly_n;
    double sigma = p.poly_sigma < FLT_EPSILON ? n * 0.3 : p.poly_sigma;
    g_.assign(2 * n + 1, 0.f);
    xg_ = xxg_ = g_;
    double sum = 0;
    for (int x = -n; x <= n; ++x) {
        g_[x + n] = (float)std::exp(-x * x / (2 * sigma * sigma));
        sum += g_[x + n];
    }
    for (int x = -n; x <= n; ++x) {
        g_[x + n] = (float)(g_[x + n] / sum);
        xg_[x + n] = (float)(x * g_[x + n]);
        xxg_[x + n] = (float)(x * x * g_[x + n]);
    }
    // Gram matrix of the basis (1, x, y, x^2, y^2, xy) under the separable weight: only four
    // distinct moments. Its inverse restricted to what the expansion needs, in closed form.
    double m0 = 0, m2 = 0, m4 = 0, m22 = 0;
    for (int y = -n; y <= n; ++y)
        for (int x = -n; x <= n; ++x) {
            const double w = (double)g_[y + n] * g_[x + n];
            m0 += w;
            m2 += w * x * x;
            m4 += w * x * x * x * x;
            m22 += w * x * x * y * y;
        }
    // Block of (1, x^2, y^2): [[m0, m2, m2], [m2, m4, m22], [m2, m22, m4]].
    const double det = m0 * (m4 * m4 - m22 * m22) - 2 * m2 * m2 * (m4 - m22);
    ig_[0] = 1.0 / m2;                       // ig11: linear terms
    ig_[1] = -m2 * (m4 - m22) / det;         // ig03: constant -> quadratic
    ig_[2] = (m0 * m4 - m2 * m2) / det;      // ig33: quadratic terms
    ig_[3] = 1.0 / m22;                      // ig55: cross term
}

void Farneback::prepare(int rows, int cols) {
    rows_ = rows;
    cols_ = cols;
    int count = 0;
    double scale = 1;
    for (; count < p_.levels; ++count) {
        scale *= p_.pyr_scale;
        if (cols * scale < kMinLevelSize || rows * scale < kMinLevelSize) break;
    }
    levels_.assign(count + 1, Level{});
    smooth_.assign(count + 1, {});
    scale = 1;
    for (int k = 0; k <= count; ++k) {
        const double sigma = (1.0 / scale - 1) * 0.5;
        const int ksize = std::max((int)std::lrint(sigma * 5) | 1, 3);
        smooth_[k] = gaussian_kernel(ksize, sigma);
        Level& L = levels_[k];
        L.cols = (int)std::lrint(cols * scale);
        L.rows = (int)std::lrint(rows * scale);
        L.R0.assign((std::size_t)L.rows * L.cols * 5, 0.f);
        // R1 has 8 floats of slack: the AVX2 bilinear sample reads 8 lanes from a pixel's 5.
        L.R1.assign(L.R0.size() + 8, 0.f);
        L.wx.assign(L.cols, 1.f);
        for (int x = 0; x < L.cols; ++x) {
            if (x < kBorder) L.wx[x] *= kBorderWeight[x];
            if (x >= L.cols - kBorder) L.wx[x] *= kBorderWeight[L.cols - 1 - x];
        }
        if (k > 0) L.flow.assign((std::size_t)L.rows * L.cols * 2, 0.f);
        scale *= p_.pyr_scale;
    }
    const std::size_t full = (std::size_t)rows * cols;
    // Plane buffers get 8 floats of slack: the expansion reads and writes whole 8-lane blocks.
    fimg_.assign(full + 8, 0.f);
    blurred_ = tmp_ = shrunk_ = fimg_;
    M_.assign(full * 5, 0.f);
    R0_.assign(full * 5, 0.f);
    const int W = (cols + 7) & ~7;
    bsum_.assign((std::size_t)W * 6, 0.f);
    planes_.assign((std::size_t)3 * (W + 2 * p_.poly_n + 8), 0.f);
    vsum_.assign((std::size_t)cols * 5, 0.0);
    hsum_.assign((std::size_t)cols * 10, 0.0);
    ref_valid_ = false;
}

void Farneback::load(const View8& img) {
    for (int y = 0; y < rows_; ++y) {
        const std::uint8_t* s = img.row(y);
        float* d = fimg_.data() + (std::ptrdiff_t)y * cols_;
        for (int x = 0; x < cols_; ++x) d[x] = s[x];
    }
}

void Farneback::expand(int level, std::vector<float>& R) {
    const Level& L = levels_[level];
    blur(fimg_.data(), rows_, cols_, smooth_[level], tmp_.data(), blurred_.data(), rowbuf_);
    const float* I = blurred_.data();
    if (L.rows != rows_ || L.cols != cols_) {
        resize_linear_f32(I, rows_, cols_, shrunk_.data(), L.rows, L.cols, 1, resize_);
        I = shrunk_.data();
    }
    // Vertical pass into three planes padded by n on both sides (replicated edges), then the
    // horizontal pass forms the six filter responses and the five coefficients.
    const int n = p_.poly_n, w = L.cols, h = L.rows, W = (w + 7) & ~7, pw = W + 2 * n + 8;
    float* c0 = planes_.data() + n;  // sum g * I          (-> 1, x, x^2)
    float* c1 = c0 + pw;             // sum x g * dI/dy     (-> y, xy)
    float* c2 = c1 + pw;             // sum x^2 g * I       (-> y^2)
    const float* g = g_.data() + n;
    const float* xg = xg_.data() + n;
    const float* xxg = xxg_.data() + n;
    for (int y = 0; y < h; ++y) {
        rows_fn_->expansion_column(I, w, h, y, n, g, xg, xxg, c0, c1, c2);
        for (int k = 1; k <= n; ++k) {
            c0[-k] = c0[0], c1[-k] = c1[0], c2[-k] = c2[0];
            c0[w - 1 + k] = c0[w - 1], c1[w - 1 + k] = c1[w - 1], c2[w - 1 + k] = c2[w - 1];
        }
        rows_fn_->expansion_row(c0, c1, c2, w, n, g, xg, xxg, ig_, bsum_.data(),
                                R.data() + (std::ptrdiff_t)y * w * 5);
    }
}

void Farneback::update_matrices(const Level& L, const float* flow) {
    const int w = L.cols, h = L.rows;
    const std::ptrdiff_t plane = (std::ptrdiff_t)w * h;
    const float* R0[5];
    float* M[5];
    for (int c = 0; c < 5; ++c) R0[c] = L.R0.data() + c * plane, M[c] = M_.data() + c * plane;
    for (int y = 0; y < h; ++y) {
        const float wy = y < kBorder ? kBorderWeight[y] : y >= h - kBorder ? kBorderWeight[h - 1 - y] : 1.f;
        rows_fn_->matrices_row(R0, L.R1.data(), w, h, y, flow + (std::ptrdiff_t)y * w * 2, L.wx.data(), wy, M);
    }
}

void Farneback::update_flow(Level& L, float* flow, bool update_after) {
    const int w = L.cols, h = L.rows, m = p_.winsize / 2;
    const std::ptrdiff_t plane = (std::ptrdiff_t)w * h;
    const double scale = 1.0 / ((double)p_.winsize * p_.winsize);
    double* vs = vsum_.data();
    // Vertical box sums (edges replicated), running down the rows; each row is then finished
    // along x and solved.
    auto add_row = [&](int y, double weight) {
        y = std::min(std::max(y, 0), h - 1);
        for (int c = 0; c < 5; ++c) {
            const float* r = M_.data() + c * plane + (std::ptrdiff_t)y * w;
            double* v = vs + (std::ptrdiff_t)c * w;
            for (int x = 0; x < w; ++x) v[x] += weight * r[x];
        }
    };
    std::fill(vs, vs + (std::ptrdiff_t)w * 5, 0.0);
    add_row(0, m + 1);
    for (int j = 1; j <= m; ++j) add_row(j, 1);
    for (int y = 0; y < h; ++y) {
        if (y > 0) {
            const int ya = std::min(y + m, h - 1), ys = std::max(y - m - 1, 0);
            for (int c = 0; c < 5; ++c)
                rows_fn_->slide_column_sums(vs + (std::ptrdiff_t)c * w, M_.data() + c * plane + (std::ptrdiff_t)ya * w,
                                            M_.data() + c * plane + (std::ptrdiff_t)ys * w, w);
        }
        rows_fn_->solve_row(vs, w, m, scale, hsum_.data(), flow + (std::ptrdiff_t)y * w * 2);
    }
    if (update_after) update_matrices(L, flow);
}

void Farneback::calc(const View8& prev, const View8& next, float* flow) {
    if (prev.rows != rows_ || prev.cols != cols_) prepare(prev.rows, prev.cols);
    bool same = ref_valid_;
    for (int y = 0; same && y < rows_; ++y)
        same = std::memcmp(prev.row(y), ref_copy_.data() + (std::ptrdiff_t)y * cols_, cols_) == 0;
    const int top = (int)levels_.size() - 1;
    if (same) {
        ++reuses_;
    } else {
        ref_copy_.resize((std::size_t)rows_ * cols_);
        for (int y = 0; y < rows_; ++y) std::memcpy(ref_copy_.data() + (std::ptrdiff_t)y * cols_, prev.row(y), cols_);
        load(prev);
        for (int k = 0; k <= top; ++k) {
            // The reference's coefficients are read plane by plane (contiguous lanes).
            Level& L = levels_[k];
            expand(k, R0_);
            const std::ptrdiff_t plane = (std::ptrdiff_t)L.rows * L.cols;
            for (std::ptrdiff_t i = 0; i < plane; ++i)
                for (int c = 0; c < 5; ++c) L.R0[c * plane + i] = R0_[i * 5 + c];
        }
        ref_valid_ = true;
    }
    load(next);
    for (int k = top; k >= 0; --k) {
        Level& L = levels_[k];
        expand(k, L.R1);
        float* f = k == 0 ? flow : L.flow.data();
        const std::size_t count = (std::size_t)L.rows * L.cols * 2;
        if (k == top) {
            std::fill(f, f + count, 0.f);
        } else {
            const Level& C = levels_[k + 1];
            resize_linear_f32(C.flow.data(), C.rows, C.cols, f, L.rows, L.cols, 2, resize_);
            const float up = (float)(1.0 / p_.pyr_scale);
            for (std::size_t i = 0; i < count; ++i) f[i] *= up;
        }
        update_matrices(L, f);
        for (int i = 0; i < p_.iterations; ++i) update_flow(L, f, i < p_.iterations - 1);
    }
}

}  // namespace microexp
