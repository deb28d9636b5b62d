// Borrowed, read-only views of caller memory: rows may be padded (a NumPy slice of a larger
// frame), pixels within a row are packed. The bindings check the layout before building one.
#pragma once
#include <cstddef>
#include <cstdint>

namespace microexp {

template <typename T>
struct View {
    const T* data = nullptr;
    std::ptrdiff_t stride = 0;  // elements between row starts
    int rows = 0, cols = 0, cn = 1;
    const T* row(int r) const { return data + r * stride; }
};

using View8 = View<std::uint8_t>;
using ViewF = View<float>;

}  // namespace microexp
