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
// left over at the end of each row with a scalar loop that rounds. The block is 32 pixels on
// x86 CPUs with AVX2 (OpenCV's widest dispatch for colour conversion), else 16.
int hsv_vector_block() {
#if defined(MICROEXP_X86_DISPATCH)
    static const int block = __builtin_cpu_supports("avx2") ? 32 : 16;
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

// Flow as a packed (rows, cols, 2) array; a sanitised copy when non-finite values are zeroed.
ViewF finite_flow(const ViewF& flow, bool zero_nonfinite, std::vector<float>& storage) {
    if (!zero_nonfinite || count_nonfinite(flow) == 0) return flow;
    const int n = flow.cols * 2;
    storage.resize((std::size_t)flow.rows * n);
    for (int r = 0; r < flow.rows; ++r) {
        const float* s = flow.row(r);
        float* d = storage.data() + (std::size_t)r * n;
        for (int i = 0; i < n; i += 2) {
            const bool ok = std::isfinite(s[i]) && std::isfinite(s[i + 1]);
            d[i] = ok ? s[i] : 0.f;
            d[i + 1] = ok ? s[i + 1] : 0.f;
        }
    }
    return ViewF{storage.data(), n, flow.rows, flow.cols, 2};
}

// Min-max normalisation of one plane to [0, scale]; a constant plane becomes zeros.
void normalise(std::vector<float>& plane, float scale) {
    const auto [lo, hi] = std::minmax_element(plane.begin(), plane.end());
    const double mn = *lo, range = (double)*hi - mn;
    const double k = range > 0 ? scale / range : 0.0;
    for (float& x : plane) x = (float)((x - mn) * k);
}

}  // namespace

std::ptrdiff_t count_nonfinite(const ViewF& flow) {
    // A float is NaN or infinite when its exponent bits are all ones; testing the bits (not
    // std::isfinite) lets the compiler vectorise this pass over the whole field.
    std::ptrdiff_t bad = 0;
    for (int r = 0; r < flow.rows; ++r) {
        const float* s = flow.row(r);
        int row_bad = 0;
        for (int i = 0; i < flow.cols * 2; ++i) {
            std::uint32_t bits;
            std::memcpy(&bits, s + i, sizeof bits);
            row_bad += (bits & 0x7f800000u) == 0x7f800000u;
        }
        bad += row_bad;
    }
    return bad;
}

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

void encode_hsv28(const ViewF& flow_in, bool zero_nonfinite, std::uint8_t* out) {
    thread_local std::vector<float> clean, mag;
    thread_local std::vector<std::uint8_t> hue, bgr_planes;
    const ViewF flow = finite_flow(flow_in, zero_nonfinite, clean);
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

void encode_uvs28(const ViewF& flow_in, bool zero_nonfinite, float scale, float* out) {
    thread_local std::vector<float> clean, u, v, strain;
    const ViewF flow = finite_flow(flow_in, zero_nonfinite, clean);
    const int rows = flow.rows, cols = flow.cols;
    const std::size_t n = (std::size_t)rows * cols;
    u.resize(n), v.resize(n), strain.resize(n);
    for (int r = 0; r < rows; ++r) {
        const float* f = flow.row(r);
        for (int c = 0; c < cols; ++c) u[r * cols + c] = f[2 * c], v[r * cols + c] = f[2 * c + 1];
    }
    // Derivatives as numpy.gradient takes them: central inside, one-sided at the borders.
    auto d_dx = [&](const std::vector<float>& p, int r, int c) {
        const float* row = p.data() + (std::size_t)r * cols;
        if (c == 0) return row[1] - row[0];
        if (c == cols - 1) return row[c] - row[c - 1];
        return 0.5f * (row[c + 1] - row[c - 1]);
    };
    auto d_dy = [&](const std::vector<float>& p, int r, int c) {
        const float* col = p.data() + c;
        if (r == 0) return col[cols] - col[0];
        if (r == rows - 1) return col[(std::size_t)r * cols] - col[(std::size_t)(r - 1) * cols];
        return 0.5f * (col[(std::size_t)(r + 1) * cols] - col[(std::size_t)(r - 1) * cols]);
    };
    for (int r = 0; r < rows; ++r)
        for (int c = 0; c < cols; ++c) {
            const float exx = d_dx(u, r, c), eyy = d_dy(v, r, c);
            const float exy = 0.5f * (d_dy(u, r, c) + d_dx(v, r, c));
            strain[(std::size_t)r * cols + c] = std::sqrt(exx * exx + eyy * eyy + 2 * exy * exy);
        }
    std::vector<float>* planes[3] = {&u, &v, &strain};
    for (int k = 0; k < 3; ++k) {
        normalise(*planes[k], scale);
        resize_area_f32(planes[k]->data(), rows, cols, out + (std::size_t)k * kMapSize * kMapSize,
                        kMapSize, kMapSize);
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
