#include "template_match.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#if defined(MICROEXP_X86_DISPATCH)
#include <immintrin.h>
#endif

namespace microexp {
namespace {

// ---------------------------------------------------------------------------------------------
// Template statistics and the score formula, written as OpenCV's common_matchTemplate and
// meanStdDev compute them (same operations, same order), so equal sums give equal floats.

constexpr int kLanes = 48;
constexpr int kChunk = 32736;  // 48 * 682: a multiple of kLanes, and kChunk * 255^2 < 2^31

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
    // Per row, 48 int32 lanes (lane l holds channel l % cn, as in the window sums) so that the
    // compiler vectorises the sums; a row of up to 2^31 / 255^2 / 48 * 48 bytes cannot overflow.
    const int n = t.cols * t.cn;
    for (int r = 0; r < t.rows; ++r) {
        const std::uint8_t* p = t.row(r);
        for (int start = 0; start < n; start += kChunk) {
            const int end = std::min(n, start + kChunk);
            std::int32_t ls[kLanes] = {0}, lq[kLanes] = {0};
            int i = start;
            for (; i + kLanes <= end; i += kLanes)
                for (int l = 0; l < kLanes; ++l) {
                    const std::int32_t v = p[i + l];
                    ls[l] += v;
                    lq[l] += v * v;
                }
            for (int l = 0; i < end; ++i, ++l) ls[l] += p[i], lq[l] += p[i] * p[i];
            // start is a multiple of kChunk, itself a multiple of 48, so lane l is channel l % cn.
            for (int l = 0; l < kLanes; ++l) s[l % t.cn] += ls[l], q[l % t.cn] += lq[l];
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


// Portable form: the compiler vectorises it for the baseline instruction set.
void accumulate_row_generic(const std::uint8_t* img, const std::uint8_t* tpl, int n,
                            std::int64_t& cc, std::int64_t& q, std::int32_t* lanes) {
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

WindowSums window_sums_generic(const View8& img, const View8& tpl, int x, int y) {
    WindowSums w;
    std::int32_t lanes[kLanes] = {0};
    const int n = tpl.cols * tpl.cn;
    for (int r = 0; r < tpl.rows; ++r) {
        accumulate_row_generic(img.row(y + r) + (std::ptrdiff_t)x * img.cn, tpl.row(r), n, w.cc, w.q,
                               lanes);
        if (r % 4096 == 4095) {  // keep int32 lanes far from overflow on huge templates
            for (int l = 0; l < kLanes; ++l) w.s[l % tpl.cn] += lanes[l], lanes[l] = 0;
        }
    }
    for (int l = 0; l < kLanes; ++l) w.s[l % tpl.cn] += lanes[l];
    return w;
}

#if defined(MICROEXP_X86_DISPATCH)
// AVX2 form over the whole window: bytes widened to 16 bit once and used three times, for the
// correlation and the sum of squares (vpmaddwd: 16 products summed pairwise into 32 bit) and
// for the 48 channel lanes. The accumulators stay in registers across rows and are widened
// every kFlushBlocks blocks (128 * 255 < 2^15 keeps the 16-bit lanes exact); a row's last
// partial block is copied into zeroed buffers, which add nothing to any sum.
struct Avx2Sums {
    __m256i lane16[3], lane32[6], cc32, q32, cc64, q64;
    int flushes = 0;
    std::int64_t s[4] = {0, 0, 0, 0};  // per-channel sums moved out of lane32 now and then
};

__attribute__((target("avx2"))) inline void add_block(Avx2Sums& a, const std::uint8_t* img,
                                                     const std::uint8_t* tpl) {
    for (int j = 0; j < 3; ++j) {
        const __m256i p = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(img + 16 * j)));
        const __m256i t = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(tpl + 16 * j)));
        a.cc32 = _mm256_add_epi32(a.cc32, _mm256_madd_epi16(p, t));
        a.q32 = _mm256_add_epi32(a.q32, _mm256_madd_epi16(p, p));
        a.lane16[j] = _mm256_add_epi16(a.lane16[j], p);
    }
}

__attribute__((target("avx2"))) inline __m256i widen_add_u32(__m256i acc64, __m256i v32) {
    return _mm256_add_epi64(acc64, _mm256_add_epi64(_mm256_cvtepu32_epi64(_mm256_castsi256_si128(v32)),
                                                    _mm256_cvtepu32_epi64(_mm256_extracti128_si256(v32, 1))));
}

__attribute__((target("avx2"))) inline __m256i widen_add_s32(__m256i acc64, __m256i v32) {
    return _mm256_add_epi64(acc64, _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(v32)),
                                                    _mm256_cvtepi32_epi64(_mm256_extracti128_si256(v32, 1))));
}

__attribute__((target("avx2"))) inline void drain_lanes(Avx2Sums& a, int cn) {
    alignas(32) std::int32_t lanes[kLanes];
    for (int k = 0; k < 6; ++k) {
        _mm256_store_si256(reinterpret_cast<__m256i*>(lanes + 8 * k), a.lane32[k]);
        a.lane32[k] = _mm256_setzero_si256();
    }
    for (int l = 0; l < kLanes; ++l) a.s[l % cn] += lanes[l];
}

__attribute__((target("avx2"))) inline void flush(Avx2Sums& a, int cn) {
    for (int j = 0; j < 3; ++j) {
        a.lane32[2 * j] = _mm256_add_epi32(a.lane32[2 * j], _mm256_cvtepu16_epi32(_mm256_castsi256_si128(a.lane16[j])));
        a.lane32[2 * j + 1] = _mm256_add_epi32(a.lane32[2 * j + 1],
                                               _mm256_cvtepu16_epi32(_mm256_extracti128_si256(a.lane16[j], 1)));
        a.lane16[j] = _mm256_setzero_si256();
    }
    // 32-bit partials: at most 3 * 2 * 255^2 per lane per block, so 128 blocks stay < 2^31.
    a.cc64 = widen_add_u32(a.cc64, a.cc32);
    a.q64 = widen_add_u32(a.q64, a.q32);
    a.cc32 = a.q32 = _mm256_setzero_si256();
    // A 32-bit lane grows by at most 128 * 255 per flush: move it out well before 2^31.
    if (++a.flushes == 16384) drain_lanes(a, cn), a.flushes = 0;
}

__attribute__((target("avx2"))) WindowSums window_sums_avx2(const View8& img, const View8& tpl, int x,
                                                            int y) {
    constexpr int kFlushBlocks = 128;
    Avx2Sums a;
    for (auto& v : a.lane16) v = _mm256_setzero_si256();
    for (auto& v : a.lane32) v = _mm256_setzero_si256();
    a.cc32 = a.q32 = a.cc64 = a.q64 = _mm256_setzero_si256();
    const int n = tpl.cols * tpl.cn, full = n / kLanes * kLanes, tail = n - full;
    int blocks = 0;
    for (int r = 0; r < tpl.rows; ++r) {
        const std::uint8_t* p = img.row(y + r) + (std::ptrdiff_t)x * img.cn;
        const std::uint8_t* t = tpl.row(r);
        for (int i = 0; i < full; i += kLanes) {
            add_block(a, p + i, t + i);
            if (++blocks == kFlushBlocks) flush(a, tpl.cn), blocks = 0;
        }
        if (tail) {
            alignas(32) std::uint8_t pt[kLanes] = {0}, tt[kLanes] = {0};
            std::memcpy(pt, p + full, tail);
            std::memcpy(tt, t + full, tail);
            add_block(a, pt, tt);
            if (++blocks == kFlushBlocks) flush(a, tpl.cn), blocks = 0;
        }
    }
    flush(a, tpl.cn);
    drain_lanes(a, tpl.cn);
    WindowSums w;
    alignas(32) std::int64_t part[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(part), a.cc64);
    w.cc = part[0] + part[1] + part[2] + part[3];
    _mm256_store_si256(reinterpret_cast<__m256i*>(part), a.q64);
    w.q = part[0] + part[1] + part[2] + part[3];
    for (int k = 0; k < 4; ++k) w.s[k] = a.s[k];
    return w;
}
#endif


// ---------------------------------------------------------------------------------------------
// Pyramid helpers.

struct Plane {
    std::vector<std::uint8_t> pixels;
    View8 view;
};

// 2x2 box average with rounding; odd last row/column dropped. The channel count is a template
// parameter so that the compiler knows the interleave and vectorises the pairing.
template <int CN>
void downsample_rows(const View8& src, std::uint8_t* dst, int rows, int cols) {
    thread_local std::vector<std::uint16_t> pair_sums;  // the two source rows added, per byte
    const int width = 2 * cols * CN;
    pair_sums.resize(width);
    std::uint16_t* v = pair_sums.data();
    for (int r = 0; r < rows; ++r) {
        const std::uint8_t* a = src.row(2 * r);
        const std::uint8_t* b = src.row(2 * r + 1);
        for (int i = 0; i < width; ++i) v[i] = (std::uint16_t)(a[i] + b[i]);
        std::uint8_t* d = dst + (std::size_t)r * cols * CN;
        for (int c = 0; c < cols; ++c)
            for (int k = 0; k < CN; ++k)
                d[c * CN + k] = (std::uint8_t)((v[2 * c * CN + k] + v[(2 * c + 1) * CN + k] + 2) >> 2);
    }
}

void downsample_generic(const View8& src, std::uint8_t* dst, int rows, int cols) {
    switch (src.cn) {  // the bindings allow 1 to 4 channels
        case 1: downsample_rows<1>(src, dst, rows, cols); break;
        case 2: downsample_rows<2>(src, dst, rows, cols); break;
        case 3: downsample_rows<3>(src, dst, rows, cols); break;
        default: downsample_rows<4>(src, dst, rows, cols); break;
    }
}

#if defined(MICROEXP_X86_DISPATCH)
// AVX2 form for gray and BGR, the same sums and rounding: a shuffle puts the two pixels of a
// pair side by side per channel, vpmaddubsw with ones adds each pair, the two source rows are
// added in 16 bit (at most 4 * 255), then (sum + 2) >> 2 is packed back to bytes. The last
// pixels of each row take the scalar path, which also keeps every load and store inside the
// rows.
__attribute__((target("avx2"))) void downsample_avx2(const View8& src, std::uint8_t* dst, int rows, int cols) {
    const int cn = src.cn;
    if (cn != 1 && cn != 3) return downsample_generic(src, dst, rows, cols);
    const __m256i ones = _mm256_set1_epi8(1), two = _mm256_set1_epi16(2);
    // BGR: per 128-bit lane, 12 source bytes (4 pixels) -> b0 b1 g0 g1 r0 r1 b2 b3 g2 g3 r2 r3.
    const __m256i pair3 = _mm256_setr_epi8(0, 3, 1, 4, 2, 5, 6, 9, 7, 10, 8, 11, -1, -1, -1, -1,
                                           0, 3, 1, 4, 2, 5, 6, 9, 7, 10, 8, 11, -1, -1, -1, -1);
    const std::size_t out_row = (std::size_t)cols * cn;
    for (int r = 0; r < rows; ++r) {
        const std::uint8_t* a = src.row(2 * r);
        const std::uint8_t* b = src.row(2 * r + 1);
        std::uint8_t* d = dst + r * out_row;
        int c = 0;
        if (cn == 1) {
            // 32 output pixels from 64 source bytes per row.
            for (; c + 32 <= cols; c += 32) {
                __m256i half[2];
                for (int j = 0; j < 2; ++j) {
                    const __m256i ra = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + 2 * c + 32 * j));
                    const __m256i rb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2 * c + 32 * j));
                    const __m256i sum = _mm256_add_epi16(_mm256_maddubs_epi16(ra, ones), _mm256_maddubs_epi16(rb, ones));
                    half[j] = _mm256_srli_epi16(_mm256_add_epi16(sum, two), 2);
                }
                // packus interleaves the lanes; the permute puts the 32 bytes back in order.
                const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi16(half[0], half[1]), 0xD8);
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + c), packed);
            }
        } else {
            // 4 output pixels (12 bytes) from 24 source bytes per row; the loads read 28 and
            // the second store writes 2 bytes past the 12, both still inside the row (5 <= cols - c).
            for (; c + 5 <= cols; c += 4) {
                const std::uint8_t* pa = a + 6 * c;
                const std::uint8_t* pb = b + 6 * c;
                const __m256i ra = _mm256_shuffle_epi8(_mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(pa + 12),
                                                                           reinterpret_cast<const __m128i*>(pa)), pair3);
                const __m256i rb = _mm256_shuffle_epi8(_mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(pb + 12),
                                                                           reinterpret_cast<const __m128i*>(pb)), pair3);
                const __m256i sum = _mm256_add_epi16(_mm256_maddubs_epi16(ra, ones), _mm256_maddubs_epi16(rb, ones));
                const __m256i q = _mm256_srli_epi16(_mm256_add_epi16(sum, two), 2);
                const __m256i packed = _mm256_packus_epi16(q, q);  // per lane: 6 output bytes, then junk
                _mm_storel_epi64(reinterpret_cast<__m128i*>(d + 3 * c), _mm256_castsi256_si128(packed));
                _mm_storel_epi64(reinterpret_cast<__m128i*>(d + 3 * c + 6), _mm256_extracti128_si256(packed, 1));
            }
        }
        for (; c < cols; ++c)
            for (int k = 0; k < cn; ++k)
                d[c * cn + k] = (std::uint8_t)((a[2 * c * cn + k] + b[2 * c * cn + k] + a[(2 * c + 1) * cn + k] +
                                                b[(2 * c + 1) * cn + k] + 2) >> 2);
    }
}
#endif

// ---------------------------------------------------------------------------------------------
// Column sums of rows [r0, r1) of an image, per byte: sum and sum of squares (ColumnStats).
// One body, compiled for the baseline and, through inlining, for AVX2.

__attribute__((always_inline)) inline void add_rows_body(const View8& img, int r0, int r1, std::int32_t* cs,
                                                         std::int32_t* cq) {
    const int n = img.cols * img.cn;
    for (int r = r0; r < r1; ++r) {
        const std::uint8_t* p = img.row(r);
        for (int i = 0; i < n; ++i) {
            const std::int32_t v = p[i];
            cs[i] += v;
            cq[i] += v * v;
        }
    }
}

void add_rows_generic(const View8& img, int r0, int r1, std::int32_t* cs, std::int32_t* cq) {
    add_rows_body(img, r0, r1, cs, cq);
}

#if defined(MICROEXP_X86_DISPATCH)
__attribute__((target("avx2"))) void add_rows_avx2(const View8& img, int r0, int r1, std::int32_t* cs,
                                                   std::int32_t* cq) {
    add_rows_body(img, r0, r1, cs, cq);
}
#endif

// ---------------------------------------------------------------------------------------------
// The correlation sum(T * I) of one placement alone (the pyramid search takes the window's
// channel sums and sum of squares from ColumnStats). `window_total` is the window's sum of
// all bytes, which the VNNI form needs; the others ignore it.

std::int64_t correlation_generic(const View8& img, const View8& tpl, int x, int y, std::int64_t) {
    const int n = tpl.cols * tpl.cn;
    std::int64_t cc = 0;
    for (int r = 0; r < tpl.rows; ++r) {
        const std::uint8_t* a = img.row(y + r) + (std::ptrdiff_t)x * img.cn;
        const std::uint8_t* b = tpl.row(r);
        for (int start = 0; start < n; start += kChunk) {
            const int end = std::min(n, start + kChunk);
            std::int32_t c = 0;
            for (int i = start; i < end; ++i) c += (std::int32_t)a[i] * b[i];
            cc += c;
        }
    }
    return cc;
}

// Three neighbouring placements on one row, (x, y), (x + 1, y), (x + 2, y): one pass over the
// template and the image rows instead of three (the vector forms); the window at level 0 does
// not fit the L2 cache, so a placement alone is paced by memory, not arithmetic.
void correlation3_generic(const View8& img, const View8& tpl, int x, int y, const std::int64_t* totals,
                          std::int64_t* out) {
    for (int j = 0; j < 3; ++j) out[j] = correlation_generic(img, tpl, x + j, y, totals[j]);
}

#if defined(MICROEXP_X86_DISPATCH)
__attribute__((target("avx2"))) inline __m256i widen16(const std::uint8_t* p) {
    return _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// Bytes widened to 16 bit, vpmaddwd, 32-bit lanes moved to 64 bit every 4096 steps (a step
// adds at most 4 * 255^2 to a lane); the last bytes of a row by 16, then one at a time.
__attribute__((target("avx2"))) std::int64_t correlation_avx2(const View8& img, const View8& tpl, int x,
                                                              int y, std::int64_t) {
    const int n = tpl.cols * tpl.cn;
    __m256i acc32 = _mm256_setzero_si256(), acc64 = _mm256_setzero_si256();
    std::int64_t scalar = 0;
    int steps = 0;
    for (int r = 0; r < tpl.rows; ++r) {
        const std::uint8_t* a = img.row(y + r) + (std::ptrdiff_t)x * img.cn;
        const std::uint8_t* b = tpl.row(r);
        int i = 0;
        for (; i + 32 <= n; i += 32) {
            acc32 = _mm256_add_epi32(acc32, _mm256_madd_epi16(widen16(a + i), widen16(b + i)));
            acc32 = _mm256_add_epi32(acc32, _mm256_madd_epi16(widen16(a + i + 16), widen16(b + i + 16)));
            if (++steps == 4096) acc64 = widen_add_u32(acc64, acc32), acc32 = _mm256_setzero_si256(), steps = 0;
        }
        if (i + 16 <= n) {
            acc32 = _mm256_add_epi32(acc32, _mm256_madd_epi16(widen16(a + i), widen16(b + i)));
            if (++steps == 4096) acc64 = widen_add_u32(acc64, acc32), acc32 = _mm256_setzero_si256(), steps = 0;
            i += 16;
        }
        for (; i < n; ++i) scalar += (std::int32_t)a[i] * b[i];
    }
    acc64 = widen_add_u32(acc64, acc32);
    alignas(32) std::int64_t part[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(part), acc64);
    return part[0] + part[1] + part[2] + part[3] + scalar;
}

__attribute__((target("avx2"))) void correlation3_avx2(const View8& img, const View8& tpl, int x, int y,
                                                      const std::int64_t*, std::int64_t* out) {
    const int n = tpl.cols * tpl.cn, cn = img.cn;
    __m256i acc32[3], acc64[3];
    for (int j = 0; j < 3; ++j) acc32[j] = acc64[j] = _mm256_setzero_si256();
    std::int64_t scalar[3] = {0, 0, 0};
    int steps = 0;
    for (int r = 0; r < tpl.rows; ++r) {
        const std::uint8_t* a = img.row(y + r) + (std::ptrdiff_t)x * cn;
        const std::uint8_t* b = tpl.row(r);
        int i = 0;
        for (; i + 16 <= n; i += 16) {
            const __m256i t = widen16(b + i);
            for (int j = 0; j < 3; ++j)
                acc32[j] = _mm256_add_epi32(acc32[j], _mm256_madd_epi16(widen16(a + i + j * cn), t));
            if (++steps == 8192) {  // a step adds at most 2 * 255^2 to a lane
                for (int j = 0; j < 3; ++j) acc64[j] = widen_add_u32(acc64[j], acc32[j]), acc32[j] = _mm256_setzero_si256();
                steps = 0;
            }
        }
        for (; i < n; ++i)
            for (int j = 0; j < 3; ++j) scalar[j] += (std::int32_t)a[i + j * cn] * b[i];
    }
    for (int j = 0; j < 3; ++j) {
        acc64[j] = widen_add_u32(acc64[j], acc32[j]);
        alignas(32) std::int64_t part[4];
        _mm256_store_si256(reinterpret_cast<__m256i*>(part), acc64[j]);
        out[j] = part[0] + part[1] + part[2] + part[3] + scalar[j];
    }
}

// AVX-512 VNNI on 256-bit vectors: vpdpbusd multiplies 32 unsigned image bytes by 32 signed
// bytes and adds each group of four into a 32-bit lane, in one instruction. The template byte
// t becomes the signed t - 128 (t XOR 0x80), so the sum is sum(I * T) - 128 * sum(I), and
// sum(I) is the window total the caller already has. A row's last bytes come through a
// masked load (zeros past the row, which add nothing). Lanes move to 64 bit before 8192 steps
// (a step adds at most 4 * 255 * 128 to a lane).
__attribute__((target("avx2,avx512f,avx512bw,avx512vl,avx512vnni"))) inline __m256i dot32_vnni(
    __m256i acc, const std::uint8_t* a, const std::uint8_t* b, __m256i flip) {
    const __m256i p = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a));
    const __m256i t = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b)), flip);
    return _mm256_dpbusd_epi32(acc, p, t);
}

__attribute__((target("avx2,avx512f,avx512bw,avx512vl,avx512vnni"))) std::int64_t correlation_vnni(
    const View8& img, const View8& tpl, int x, int y, std::int64_t window_total) {
    const int n = tpl.cols * tpl.cn;
    const __m256i flip = _mm256_set1_epi8((char)0x80);
    const int tail = n % 32;
    const __mmask32 tail_mask = tail ? (__mmask32)((1u << tail) - 1u) : 0;
    // Four accumulators: one vpdpbusd chain would wait on its own latency every step.
    __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                      _mm256_setzero_si256()};
    __m256i acc64 = _mm256_setzero_si256();
    int steps = 0;
    for (int r = 0; r < tpl.rows; ++r) {
        const std::uint8_t* a = img.row(y + r) + (std::ptrdiff_t)x * img.cn;
        const std::uint8_t* b = tpl.row(r);
        int i = 0;
        for (; i + 128 <= n; i += 128)
            for (int j = 0; j < 4; ++j) acc[j] = dot32_vnni(acc[j], a + i + 32 * j, b + i + 32 * j, flip);
        for (; i + 32 <= n; i += 32) acc[0] = dot32_vnni(acc[0], a + i, b + i, flip);
        if (tail) {
            const __m256i p = _mm256_maskz_loadu_epi8(tail_mask, a + i);
            const __m256i t = _mm256_xor_si256(_mm256_maskz_loadu_epi8(tail_mask, b + i), flip);
            acc[1] = _mm256_dpbusd_epi32(acc[1], p, t);
        }
        // A row adds at most n / 128 + 5 steps to any one accumulator.
        steps += n / 128 + 5;
        if (steps >= 8192) {
            for (__m256i& v : acc) acc64 = widen_add_s32(acc64, v), v = _mm256_setzero_si256();
            steps = 0;
        }
    }
    for (__m256i& v : acc) acc64 = widen_add_s32(acc64, v);
    alignas(32) std::int64_t part[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(part), acc64);
    return part[0] + part[1] + part[2] + part[3] + 128 * window_total;
}

__attribute__((target("avx2,avx512f,avx512bw,avx512vl,avx512vnni"))) void correlation3_vnni(
    const View8& img, const View8& tpl, int x, int y, const std::int64_t* totals, std::int64_t* out) {
    const int n = tpl.cols * tpl.cn, cn = img.cn;
    const __m256i flip = _mm256_set1_epi8((char)0x80);
    const int tail = n % 32;
    const __mmask32 tail_mask = tail ? (__mmask32)((1u << tail) - 1u) : 0;
    // Two accumulators per placement, alternating, so no vpdpbusd waits on the previous one.
    __m256i acc[6], acc64[3];
    for (auto& v : acc) v = _mm256_setzero_si256();
    for (auto& v : acc64) v = _mm256_setzero_si256();
    int steps = 0;
    for (int r = 0; r < tpl.rows; ++r) {
        const std::uint8_t* a = img.row(y + r) + (std::ptrdiff_t)x * cn;
        const std::uint8_t* b = tpl.row(r);
        int i = 0;
        for (; i + 64 <= n; i += 64)
            for (int h = 0; h < 2; ++h) {
                const __m256i t = _mm256_xor_si256(
                    _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + i + 32 * h)), flip);
                for (int j = 0; j < 3; ++j)
                    acc[2 * j + h] = _mm256_dpbusd_epi32(
                        acc[2 * j + h], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i + 32 * h + j * cn)), t);
            }
        for (; i + 32 <= n; i += 32) {
            const __m256i t = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + i)), flip);
            for (int j = 0; j < 3; ++j)
                acc[2 * j] = _mm256_dpbusd_epi32(acc[2 * j], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i + j * cn)), t);
        }
        if (tail) {
            const __m256i t = _mm256_xor_si256(_mm256_maskz_loadu_epi8(tail_mask, b + i), flip);
            for (int j = 0; j < 3; ++j)
                acc[2 * j + 1] = _mm256_dpbusd_epi32(acc[2 * j + 1], _mm256_maskz_loadu_epi8(tail_mask, a + i + j * cn), t);
        }
        steps += n / 64 + 3;  // at most this many steps on any one accumulator per row
        if (steps >= 8192) {
            for (int j = 0; j < 6; ++j) acc64[j / 2] = widen_add_s32(acc64[j / 2], acc[j]), acc[j] = _mm256_setzero_si256();
            steps = 0;
        }
    }
    for (int j = 0; j < 6; ++j) acc64[j / 2] = widen_add_s32(acc64[j / 2], acc[j]);
    for (int j = 0; j < 3; ++j) {
        alignas(32) std::int64_t part[4];
        _mm256_store_si256(reinterpret_cast<__m256i*>(part), acc64[j]);
        out[j] = part[0] + part[1] + part[2] + part[3] + 128 * totals[j];
    }
}
#endif

// The row loops one search uses. `Loops::best`: the widest the CPU has (VNNI, else AVX2, else
// portable); the others force a narrower set, for tests that compare them bit for bit (the
// portable loops are what ARM runs).
struct MatchLoops {
    WindowSums (*window_sums)(const View8& img, const View8& tpl, int x, int y);
    void (*downsample)(const View8& src, std::uint8_t* dst, int rows, int cols);
    std::int64_t (*correlation)(const View8& img, const View8& tpl, int x, int y, std::int64_t window_total);
    void (*add_rows)(const View8& img, int r0, int r1, std::int32_t* cs, std::int32_t* cq);
    void (*correlation3)(const View8& img, const View8& tpl, int x, int y, const std::int64_t* totals,
                         std::int64_t* out);
};

const MatchLoops& match_loops(MatchLoopSet set) {
    static const MatchLoops generic{window_sums_generic, downsample_generic, correlation_generic,
                                    add_rows_generic, correlation3_generic};
#if defined(MICROEXP_X86_DISPATCH)
    static const MatchLoops avx2{window_sums_avx2, downsample_avx2, correlation_avx2, add_rows_avx2,
                                 correlation3_avx2};
    static const MatchLoops vnni{window_sums_avx2, downsample_avx2, correlation_vnni, add_rows_avx2,
                                 correlation3_vnni};
    static const bool has_avx2 = __builtin_cpu_supports("avx2");
    static const bool has_vnni = has_avx2 && __builtin_cpu_supports("avx512f") &&
                                 __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                                 __builtin_cpu_supports("avx512vnni");
    if (set == MatchLoopSet::best && has_vnni) return vnni;
    if ((set == MatchLoopSet::best || set == MatchLoopSet::avx2) && has_avx2) return avx2;
#endif
    (void)set;
    return generic;
}

WindowSums window_sums(const View8& img, const View8& tpl, int x, int y) {
    return match_loops(MatchLoopSet::best).window_sums(img, tpl, x, y);
}

void downsample(const View8& src, Plane& dst, const MatchLoops& loops) {
    const int rows = src.rows / 2, cols = src.cols / 2, cn = src.cn;
    dst.pixels.resize((std::size_t)rows * cols * cn);
    loops.downsample(src, dst.pixels.data(), rows, cols);
    dst.view = View8{dst.pixels.data(), (std::ptrdiff_t)cols * cn, rows, cols, cn};
}

// The channel sums and the sum of squares of every window on one row of placements: column
// sums over the template's height for that row, then prefix sums along the row, so a
// placement costs O(channels). Moving to a neighbouring row adds one image row and removes
// another, so a search that walks rows pays about one pass over a window for all of them
// instead of one per placement.
class ColumnStats {
public:
    // Whether 32-bit column sums are exact for this template height (255^2 * rows < 2^31).
    static bool fits(int tpl_rows) { return (std::int64_t)tpl_rows * 255 * 255 < (std::int64_t(1) << 31); }

    void reset() { y_ = -1; }

    void sums(const View8& img, int tpl_rows, int tpl_cols, int x, int y, const MatchLoops& loops,
              WindowSums& w) {
        move_to(img, tpl_rows, y, loops);
        const int cn = img.cn;
        for (int k = 0; k < cn; ++k) w.s[k] = ps_[(std::size_t)(x + tpl_cols) * cn + k] - ps_[(std::size_t)x * cn + k];
        w.q = pq_[x + tpl_cols] - pq_[x];
    }

private:
    void move_to(const View8& img, int h, int y, const MatchLoops& loops) {
        if (y == y_) return;
        const int n = img.cols * img.cn;
        if (y_ >= 0 && std::abs(y - y_) < h / 2) {
            for (; y_ < y; ++y_) slide(img.row(y_ + h), img.row(y_), n);  // add the row below, drop the top
            for (; y_ > y; --y_) slide(img.row(y_ - 1), img.row(y_ + h - 1), n);
        } else {
            col_s_.assign(n, 0);
            col_q_.assign(n, 0);
            loops.add_rows(img, y, y + h, col_s_.data(), col_q_.data());
            y_ = y;
        }
        const int cols = img.cols, cn = img.cn;
        ps_.resize((std::size_t)(cols + 1) * cn);
        pq_.resize(cols + 1);
        for (int k = 0; k < cn; ++k) ps_[k] = 0;
        pq_[0] = 0;
        for (int c = 0; c < cols; ++c) {
            std::int64_t q = 0;
            for (int k = 0; k < cn; ++k) {
                ps_[(std::size_t)(c + 1) * cn + k] = ps_[(std::size_t)c * cn + k] + col_s_[(std::size_t)c * cn + k];
                q += col_q_[(std::size_t)c * cn + k];
            }
            pq_[c + 1] = pq_[c] + q;
        }
    }

    void slide(const std::uint8_t* in, const std::uint8_t* out, int n) {
        std::int32_t* cs = col_s_.data();
        std::int32_t* cq = col_q_.data();
        for (int i = 0; i < n; ++i) {
            const std::int32_t a = in[i], b = out[i];
            cs[i] += a - b;
            cq[i] += a * a - b * b;
        }
    }

    int y_ = -1;
    std::vector<std::int32_t> col_s_, col_q_;  // per (column, channel) of the image
    std::vector<std::int64_t> ps_, pq_;        // prefix sums along the row
};

struct Level {
    View8 img, tpl;
    TemplateStats ts;
    const MatchLoops* loops = nullptr;
    int out_rows = 0, out_cols = 0;
    std::vector<float> cache;  // score per placement, NaN = not computed yet
    ColumnStats stats;

    float score(int x, int y) {
        float& s = cache[(std::size_t)y * out_cols + x];
        if (!std::isnan(s)) return s;
        if (!ColumnStats::fits(tpl.rows)) return s = score_from_sums(loops->window_sums(img, tpl, x, y), ts);
        WindowSums w;
        stats.sums(img, tpl.rows, tpl.cols, x, y, *loops, w);
        std::int64_t total = 0;
        for (int k = 0; k < img.cn; ++k) total += w.s[k];
        w.cc = loops->correlation(img, tpl, x, y, total);
        return s = score_from_sums(w, ts);
    }

    // Scores of (x, y), (x + 1, y), (x + 2, y) (all inside the level), the three correlations
    // in one pass when none is cached yet.
    void score_row3(int x, int y) {
        float* s = &cache[(std::size_t)y * out_cols + x];
        if (!std::isnan(s[0]) || !std::isnan(s[1]) || !std::isnan(s[2]) || !ColumnStats::fits(tpl.rows)) {
            for (int j = 0; j < 3; ++j) score(x + j, y);
            return;
        }
        WindowSums w[3];
        std::int64_t totals[3] = {0, 0, 0}, cc[3];
        for (int j = 0; j < 3; ++j) {
            stats.sums(img, tpl.rows, tpl.cols, x + j, y, *loops, w[j]);
            for (int k = 0; k < img.cn; ++k) totals[j] += w[j].s[k];
        }
        loops->correlation3(img, tpl, x, y, totals, cc);
        for (int j = 0; j < 3; ++j) w[j].cc = cc[j], s[j] = score_from_sums(w[j], ts);
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
    const int x0 = std::max(0, cx - radius), x1 = std::min(lv.out_cols - 1, cx + radius);
    for (int y = std::max(0, cy - radius); y <= std::min(lv.out_rows - 1, cy + radius); ++y) {
        if (x1 - x0 == 2) lv.score_row3(x0, y);  // the 3x3 refinement's rows: one pass each
        for (int x = x0; x <= x1; ++x) {
            const float s = lv.score(x, y);
            if (m.x < 0 || better(s, x, y, m.score, m.x, m.y)) m.score = s, m.x = x, m.y = y;
        }
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

// The template side of the pyramid search: the template copied, halved up to kMaxDepth times
// while its short side keeps 16 px, and each level's statistics.
struct PyramidTemplate::Impl {
    std::vector<std::uint8_t> pixels;  // level 0, rows packed
    std::vector<Plane> planes;         // levels 1..depth (planes[0] unused)
    std::vector<View8> views;
    std::vector<TemplateStats> stats;
    const MatchLoops* loops = nullptr;
    // Scratch for the image side, reused between calls.
    std::vector<Plane> img_planes;
    std::vector<Level> levels;
};

namespace {
constexpr int kMaxDepth = 4;
}

PyramidTemplate::PyramidTemplate(const View8& tpl, MatchLoopSet loops) : impl_(std::make_unique<Impl>()) {
    Impl& t = *impl_;
    t.loops = &match_loops(loops);
    const std::size_t row_bytes = (std::size_t)tpl.cols * tpl.cn;
    t.pixels.resize(row_bytes * tpl.rows);
    for (int r = 0; r < tpl.rows; ++r)
        std::copy(tpl.row(r), tpl.row(r) + row_bytes, t.pixels.data() + r * row_bytes);
    t.views.push_back(View8{t.pixels.data(), (std::ptrdiff_t)row_bytes, tpl.rows, tpl.cols, tpl.cn});
    int depth = 0;
    while (depth < kMaxDepth && (std::min(tpl.rows, tpl.cols) >> (depth + 1)) >= 16) ++depth;
    t.planes.resize(depth + 1);
    for (int l = 1; l <= depth; ++l) {
        downsample(t.views[l - 1], t.planes[l], *t.loops);
        t.views.push_back(t.planes[l].view);
    }
    for (const View8& v : t.views) t.stats.push_back(template_stats(v));
}

PyramidTemplate::~PyramidTemplate() = default;

int PyramidTemplate::rows() const { return impl_->views[0].rows; }
int PyramidTemplate::cols() const { return impl_->views[0].cols; }
int PyramidTemplate::channels() const { return impl_->views[0].cn; }
int PyramidTemplate::depth() const { return (int)impl_->views.size() - 1; }
const View8& PyramidTemplate::level(int l) const { return impl_->views.at(l); }

Match match_pyramid(const View8& img, const View8& tpl, bool subpixel) {
    return PyramidTemplate(tpl).match(img, subpixel, 0);
}

Match PyramidTemplate::match(const View8& img, bool subpixel, int finest) {
    Impl& t = *impl_;
    const View8& tpl = t.views[0];
    // Depth: halve while the template keeps at least 16 px on its short side and there are at
    // least two placements per axis left; at most four halvings (16x).
    int depth = 0;
    while (depth + 1 < (int)t.views.size() &&
           ((img.rows >> (depth + 1)) - (tpl.rows >> (depth + 1))) >= 1 &&
           ((img.cols >> (depth + 1)) - (tpl.cols >> (depth + 1))) >= 1)
        ++depth;

    std::vector<Plane>& img_planes = t.img_planes;
    std::vector<Level>& levels = t.levels;
    const int stop = std::clamp(finest, 0, depth);  // the finest level searched
    img_planes.resize(depth + 1);
    levels.resize(depth + 1);
    for (int l = 0; l <= depth; ++l) {
        Level& lv = levels[l];
        if (l == 0) {
            lv.img = img;
        } else {
            downsample(levels[l - 1].img, img_planes[l], *t.loops);
            lv.img = img_planes[l].view;
        }
        lv.tpl = t.views[l];
        lv.ts = t.stats[l];
        lv.loops = t.loops;
        lv.stats.reset();  // a new frame
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
        // Each finer level: the 3x3 placements around the doubled position, then a hill-climb
        // until the placement is a local maximum of that level (a few more placements when
        // the doubling landed one off, instead of always scanning a 5x5 window).
        for (int l = depth - 1; l >= stop; --l) {
            Level& lv = levels[l];
            m = best_in_window(lv, 2 * m.x, 2 * m.y, 1);
            for (int step = 0; step < 64; ++step) {
                const Match n = best_in_window(lv, m.x, m.y, 1);
                if (n.x == m.x && n.y == m.y) break;
                m = n;
            }
        }
        if (best.x < 0 || better(m.score, m.x, m.y, best.score, best.x, best.y)) best = m;
    }
    best.sub_x = best.x;
    best.sub_y = best.y;
    if (subpixel || stop > 0) {
        Level& fine = levels[stop];
        if (best.x > 0 && best.x < fine.out_cols - 1)
            best.sub_x += parabola_offset(fine.score(best.x - 1, best.y), best.score,
                                          fine.score(best.x + 1, best.y));
        if (best.y > 0 && best.y < fine.out_rows - 1)
            best.sub_y += parabola_offset(fine.score(best.x, best.y - 1), best.score,
                                          fine.score(best.x, best.y + 1));
    }
    if (stop > 0) {
        // Placement x at level l is x * 2^l at full resolution (the 2x2 averages of the image
        // and of the template start on the same even pixel); the nearest full-resolution
        // placement is returned, with the refined position when asked for.
        const double scale = (double)(1 << stop);
        best.sub_x = std::clamp(best.sub_x * scale, 0.0, (double)(img.cols - tpl.cols));
        best.sub_y = std::clamp(best.sub_y * scale, 0.0, (double)(img.rows - tpl.rows));
        best.x = std::clamp((int)std::lround(best.sub_x), 0, img.cols - tpl.cols);
        best.y = std::clamp((int)std::lround(best.sub_y), 0, img.rows - tpl.rows);
        // A peak within 0.1 px of half-way between two pixels is where rounding can miss the
        // full-resolution maximum (every miss on the tracking corpus was within 0.08): there
        // the two (or four) nearest placements are scored at full resolution, directly, and
        // the best kept (the returned score stays the coarse level's).
        auto candidates = [](double v, int hi, int* out) {
            const double f = v - std::floor(v);
            const int lo = std::clamp((int)std::floor(v), 0, hi);
            out[0] = lo;
            out[1] = std::min(lo + 1, hi);
            return (f > 0.4 && f < 0.6 && out[1] != out[0]) ? 2 : 0;
        };
        int cx[2], cy[2];
        const int nx = candidates(best.sub_x, img.cols - tpl.cols, cx);
        const int ny = candidates(best.sub_y, img.rows - tpl.rows, cy);
        if (nx || ny) {
            if (!nx) cx[0] = best.x;
            if (!ny) cy[0] = best.y;
            float top = -std::numeric_limits<float>::infinity();
            for (int j = 0; j < std::max(ny, 1); ++j)
                for (int i = 0; i < std::max(nx, 1); ++i) {
                    const float sc = score_from_sums(t.loops->window_sums(img, tpl, cx[i], cy[j]), t.stats[0]);
                    if (sc > top || (sc == top && (cy[j] < best.y || (cy[j] == best.y && cx[i] < best.x))))
                        top = sc, best.x = cx[i], best.y = cy[j];
                }
        }
        if (!subpixel) best.sub_x = best.x, best.sub_y = best.y;
    }
    return best;
}

}  // namespace microexp
