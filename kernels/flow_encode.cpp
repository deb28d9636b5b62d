#include "flow_encode.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <vector>

#include "resize.hpp"

namespace microexp {

// Defined in polar_generic.cpp / polar_fma.cpp (same source, with and without fused mul-add).
#define MICROEXP_DECLARE_POLAR(suffix)                                                          \
    void polar_hue_mag_##suffix(const float*, std::ptrdiff_t, int, int, std::uint8_t*, float*); \
    void minmax_##suffix(const float*, std::ptrdiff_t, float*, float*);                         \
    void value_bgr_##suffix(const std::uint8_t*, const float*, int, int, int, float, float,      \
                            const std::uint8_t (*)[3], std::uint8_t*, std::uint8_t*,             \
                            std::uint8_t*);
MICROEXP_DECLARE_POLAR(generic)
#if defined(MICROEXP_X86_DISPATCH)
MICROEXP_DECLARE_POLAR(fma)
#endif

bool cpu_has_fma() {
#if defined(MICROEXP_X86_DISPATCH)
    static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return has;
#else
    return false;
#endif
}

namespace {

// OpenCV converts HSV->BGR (8 bit) in blocks of vector width with truncation, and the pixels
// left over at the end of each row with a scalar loop that rounds. The block follows OpenCV's
// run-time dispatch for colour conversion: 64 pixels on x86 CPUs with its AVX512_SKX feature set,
// 32 with AVX2, else 16.
int hsv_vector_block() {
#if defined(MICROEXP_X86_DISPATCH)
    static const int block =
        (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vl")) ? 64
        : __builtin_cpu_supports("avx2") ? 32 : 16;
    return block;
#else
    return 16;
#endif
}

// BGR of every (H, V) pair with S = 255 through OpenCV's scalar HSV->BGR loop (which rounds),
// for the pixels after the last full vector block of a row.
struct ScalarHsvTable {
    std::uint8_t bgr[181 * 256][3];

    ScalarHsvTable() {
        const float inv255 = 1.0f / 255.0f;
        for (int hi = 0; hi <= 180; ++hi)
            for (int vi = 0; vi < 256; ++vi)
                convert((float)hi, 255.f * inv255, (float)vi * inv255, bgr[hi * 256 + vi]);
    }

    static void convert(float h, float s, float v, std::uint8_t* out) {
        static const int sector_data[6][3] = {{1, 3, 0}, {1, 0, 2}, {3, 0, 1},
                                              {0, 2, 1}, {0, 1, 3}, {2, 1, 0}};
        float bgr[3];
        if (s == 0) {
            bgr[0] = bgr[1] = bgr[2] = v;
        } else {
            h *= 6.0f / 180;
            while (h >= 6) h -= 6;
            int sector = (int)std::floor(h);
            h -= (float)sector;
            if ((unsigned)sector >= 6u) sector = 0, h = 0.f;
            const float tab[4] = {v, v * (1.f - s), v * (1.f - s * h), v * (1.f - s * (1.f - h))};
            for (int c = 0; c < 3; ++c) bgr[c] = tab[sector_data[sector][c]];
        }
        for (int c = 0; c < 3; ++c)
            out[c] = (std::uint8_t)std::clamp((int)std::lrintf(bgr[c] * 255.0f), 0, 255);
    }
};

const ScalarHsvTable& scalar_hsv_table() {
    static const ScalarHsvTable table;  // built once, thread-safe (C++11 static init)
    return table;
}

}  // namespace

namespace {

// The per-pixel passes, compiled once per arithmetic flavour.
struct PolarPasses {
    decltype(&polar_hue_mag_generic) polar;
    decltype(&minmax_generic) minmax;
    decltype(&value_bgr_generic) value_bgr;
};

const PolarPasses& polar_passes() {
#if defined(MICROEXP_X86_DISPATCH)
    static const PolarPasses fused{polar_hue_mag_fma, minmax_fma, value_bgr_fma};
    if (cpu_has_fma()) return fused;
#endif
    static const PolarPasses plain{polar_hue_mag_generic, minmax_generic, value_bgr_generic};
    return plain;
}

}  // namespace

void encode_hsv28(const ViewF& flow_in, const FlowScan& scan, bool zero_nonfinite, std::uint8_t* out) {
    thread_local std::vector<float> clean, mag;
    thread_local std::vector<std::uint8_t> hue, bgr_planes;
    // A huge flow is divided by a power of two first: the magnitudes scale exactly, and the
    // min-max normalisation takes the scale out again, so V is what unbounded floats would give.
    const ViewF flow = prepared_flow(flow_in, scan, zero_nonfinite, clean);
    const int rows = flow.rows, cols = flow.cols;
    const std::size_t n = (std::size_t)rows * cols;
    hue.resize(n), mag.resize(n), bgr_planes.resize(3 * n);
    const PolarPasses& pass = polar_passes();

    pass.polar(flow.data, flow.stride, rows, cols, hue.data(), mag.data());
    // cv2.normalize(mag, None, 0, 255, NORM_MINMAX) on float32, as OpenCV derives its factors.
    float lo, hi;
    pass.minmax(mag.data(), (std::ptrdiff_t)n, &lo, &hi);
    const double smin = lo, smax = hi;
    double scale = 255.0 * (smax - smin > DBL_EPSILON ? 1.0 / (smax - smin) : 0.0);
    scale = (float)scale;
    const float shift = 0.0f - (float)(smin * scale);

    std::uint8_t* planes[3] = {bgr_planes.data(), bgr_planes.data() + n, bgr_planes.data() + 2 * n};
    const int vector_cols = cols / hsv_vector_block() * hsv_vector_block();
    pass.value_bgr(hue.data(), mag.data(), rows, cols, vector_cols, (float)scale, shift,
                   scalar_hsv_table().bgr, planes[0], planes[1], planes[2]);

    resize_area_u8_planes(planes, 3, rows, cols, out, kMapSize, kMapSize);
}

void hsv_to_bgr_u8(const std::uint8_t* hue, const std::uint8_t* value, int rows, int cols,
                   std::uint8_t* bgr) {
    const std::size_t n = (std::size_t)rows * cols;
    std::vector<float> mag(value, value + n);  // V = trunc(V * 1 + 0) exactly
    std::vector<std::uint8_t> planes(3 * n);
    const int vector_cols = cols / hsv_vector_block() * hsv_vector_block();
    polar_passes().value_bgr(hue, mag.data(), rows, cols, vector_cols, 1.f, 0.f,
                             scalar_hsv_table().bgr, planes.data(), planes.data() + n,
                             planes.data() + 2 * n);
    for (std::size_t i = 0; i < n; ++i)
        for (int k = 0; k < 3; ++k) bgr[3 * i + k] = planes[k * n + i];
}

namespace {

// Derivative along a row as numpy.gradient takes it: central inside, one-sided at both ends.
inline void row_gradient(const float* f, int cols, float* d) {
    d[0] = f[1] - f[0];
    for (int c = 1; c < cols - 1; ++c) d[c] = 0.5f * (f[c + 1] - f[c - 1]);
    d[cols - 1] = f[cols - 1] - f[cols - 2];
}

}  // namespace

void encode_uvs28(const ViewF& flow_in, const FlowScan& scan, bool zero_nonfinite, float scale,
                  float* out) {
    thread_local std::vector<float> clean, u, v, strain, du_dx, dv_dx;
    // As in encode_hsv28: every map is min-max normalised, so dividing a huge flow by a power
    // of two changes nothing but keeps the strain's squares finite.
    const ViewF flow = prepared_flow(flow_in, scan, zero_nonfinite, clean);
    const int rows = flow.rows, cols = flow.cols;  // at least 28 each (the bindings check)
    const std::size_t n = (std::size_t)rows * cols;
    u.resize(n), v.resize(n), strain.resize(n), du_dx.resize(cols), dv_dx.resize(cols);
    for (int r = 0; r < rows; ++r) {
        const float* f = flow.row(r);
        float* ur = u.data() + (std::size_t)r * cols;
        float* vr = v.data() + (std::size_t)r * cols;
        for (int c = 0; c < cols; ++c) ur[c] = f[2 * c], vr[c] = f[2 * c + 1];
    }
    // Optical strain from numpy.gradient-style derivatives: per row, the rows above and below
    // (the row itself at the borders, where the difference is one-sided and not halved).
    for (int r = 0; r < rows; ++r) {
        const int up = r > 0 ? r - 1 : r, down = r < rows - 1 ? r + 1 : r;
        const float half = (r > 0 && r < rows - 1) ? 0.5f : 1.0f;
        const float* ur = u.data() + (std::size_t)r * cols;
        const float* vr = v.data() + (std::size_t)r * cols;
        const float* u_up = u.data() + (std::size_t)up * cols;
        const float* u_down = u.data() + (std::size_t)down * cols;
        const float* v_up = v.data() + (std::size_t)up * cols;
        const float* v_down = v.data() + (std::size_t)down * cols;
        row_gradient(ur, cols, du_dx.data());
        row_gradient(vr, cols, dv_dx.data());
        float* st = strain.data() + (std::size_t)r * cols;
        for (int c = 0; c < cols; ++c) {
            const float exx = du_dx[c], eyy = half * (v_down[c] - v_up[c]);
            const float exy = 0.5f * (half * (u_down[c] - u_up[c]) + dv_dx[c]);
            st[c] = std::sqrt(exx * exx + eyy * eyy + 2 * exy * exy);
        }
    }
    // Min-max normalisation commutes with the area resize (its weights sum to one), so the
    // 28x28 maps are shrunk first and scaled after: 784 values instead of rows x cols.
    const std::vector<float>* planes[3] = {&u, &v, &strain};
    for (int k = 0; k < 3; ++k) {
        float lo, hi;
        polar_passes().minmax(planes[k]->data(), (std::ptrdiff_t)n, &lo, &hi);  // eight lanes
        const double mn = lo, range = (double)hi - mn;
        const double factor = range > 0 ? scale / range : 0.0;
        float* o = out + (std::size_t)k * kMapSize * kMapSize;
        resize_area_f32(planes[k]->data(), rows, cols, o, kMapSize, kMapSize, mn, factor);
    }
}

void compose_regions(const float* in, const double* landmarks, float* out) {
    // Faithful to the official HTNet code: centres clamped to [7, 21] and truncated; the first
    // coordinate (x) indexes rows and the second (y) columns; tiles are points 0 and 1 on top,
    // 3 and 4 below (the nose, point 2, is not used).
    static const int points[4] = {0, 1, 3, 4};
    static const int tile_row[4] = {0, 0, 14, 14}, tile_col[4] = {0, 14, 0, 14};
    const int half = kMapSize / 4;  // 7
    for (int t = 0; t < 4; ++t) {
        const double* p = landmarks + 2 * points[t];
        const int cr = (int)std::clamp(p[0], 7.0, 21.0), cc = (int)std::clamp(p[1], 7.0, 21.0);
        for (int ch = 0; ch < 3; ++ch)
            for (int i = 0; i < 2 * half; ++i) {
                const float* src = in + ((std::size_t)ch * kMapSize + cr - half + i) * kMapSize +
                                   (cc - half);
                float* dst = out + ((std::size_t)ch * kMapSize + tile_row[t] + i) * kMapSize +
                             tile_col[t];
                std::copy(src, src + 2 * half, dst);
            }
    }
}

}  // namespace microexp
