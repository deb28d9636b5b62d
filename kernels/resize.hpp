// Image resizing with the arithmetic of cv::resize, so results match OpenCV-Python.
#pragma once
#include <cstddef>
#include <cstdint>

#include "image_view.hpp"

namespace microexp {

// INTER_LINEAR on 8-bit images: OpenCV's 11-bit fixed-point weights and the rounding of its
// vector path (OpenCV's scalar tail rounds slightly differently: at most one grey level).
void resize_linear_u8(const View8& src, std::uint8_t* dst, std::ptrdiff_t dst_stride, int dst_rows,
                      int dst_cols);

// INTER_AREA on 8-bit images, shrinking only (dst no larger than src on both axes):
// OpenCV's integer-factor, 2x2 and fractional-weight paths reproduced bit for bit.
void resize_area_u8(const View8& src, std::uint8_t* dst, int dst_rows, int dst_cols);

// The same, reading `cn` separate planes of rows x cols and writing interleaved pixels.
void resize_area_u8_planes(const std::uint8_t* const* planes, int cn, int rows, int cols,
                           std::uint8_t* dst, int dst_rows, int dst_cols);

// INTER_AREA on one float plane, shrinking only; weights accumulated in double. Each output
// value is (area mean - offset) * factor, which folds a min-max normalisation into the resize.
void resize_area_f32(const float* src, int src_rows, int src_cols, float* dst, int dst_rows,
                     int dst_cols, double offset = 0.0, double factor = 1.0);

}  // namespace microexp
