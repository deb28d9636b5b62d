#include "flow_scan.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace microexp {
namespace {

constexpr std::uint32_t kExponentBits = 0x7f800000u;  // all ones: NaN or infinite

constexpr std::uint32_t kSafeExponentBits = (127u + kFlowSafeExponent) << 23;  // 2^61 and up

// How many values are not finite, and the largest biased exponent of the finite ones. The
// common pass only compares bits (SSE2 vectorises it); the largest exponent is looked for in
// a second pass only when some finite value is beyond 2^61, which real flows never are.
struct ExponentScan {
    std::uint32_t max_exponent = 0;
    std::ptrdiff_t nonfinite = 0;
    void add(const float* s, std::size_t n) {
        int bad = 0, big = 0;
        for (std::size_t i = 0; i < n; ++i) {
            std::uint32_t bits;
            std::memcpy(&bits, s + i, sizeof bits);
            const std::int32_t e = (std::int32_t)(bits & kExponentBits);  // sign bit cleared
            bad += e == (std::int32_t)kExponentBits;
            big += e > (std::int32_t)kSafeExponentBits;
        }
        nonfinite += bad;
        if (big == bad) return;
        for (std::size_t i = 0; i < n; ++i) {
            std::uint32_t bits;
            std::memcpy(&bits, s + i, sizeof bits);
            const std::uint32_t e = bits & kExponentBits;
            if (e != kExponentBits) max_exponent = std::max(max_exponent, e);
        }
    }
    int shift() const {
        const int biased = (int)(max_exponent >> 23);  // value < 2^(biased - 126)
        return std::max(0, biased - 127 - kFlowSafeExponent);
    }
};

}  // namespace

FlowScan scan_flow(const ViewF& flow) {
    ExponentScan s;
    for (int r = 0; r < flow.rows; ++r) s.add(flow.row(r), (std::size_t)flow.cols * 2);
    return FlowScan{s.nonfinite, s.shift()};
}

int flow_shift(const float* values, std::size_t n) {
    ExponentScan s;
    s.add(values, n);
    return s.shift();
}

ViewF prepared_flow(const ViewF& flow, const FlowScan& scan, bool zero_nonfinite,
                    std::vector<float>& storage) {
    const bool zeroing = zero_nonfinite && scan.nonfinite > 0;
    if (!zeroing && scan.shift == 0) return flow;
    const float factor = std::ldexp(1.0f, -scan.shift);  // at most 2^-67: a normal float
    const int n = flow.cols * 2;
    storage.resize((std::size_t)flow.rows * n);
    for (int r = 0; r < flow.rows; ++r) {
        const float* s = flow.row(r);
        float* d = storage.data() + (std::size_t)r * n;
        for (int i = 0; i < n; i += 2) {
            const bool ok = !zeroing || (std::isfinite(s[i]) && std::isfinite(s[i + 1]));
            d[i] = ok ? s[i] * factor : 0.f;
            d[i + 1] = ok ? s[i + 1] * factor : 0.f;
        }
    }
    return ViewF{storage.data(), n, flow.rows, flow.cols, 2};
}

}  // namespace microexp
