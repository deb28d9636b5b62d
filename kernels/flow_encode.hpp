// Flow field -> 28x28 model inputs: the seed's HSV encoding and the HTNet u/v/strain family.
#pragma once
#include <cstddef>
#include <cstdint>

#include "flow_scan.hpp"
#include "image_view.hpp"

namespace microexp {

constexpr int kMapSize = 28;

// BGR uint8 [28, 28, 3], bit-identical to the OpenCV-Python chain of the seed wherever OpenCV's
// float arithmetic stays finite. `scan`: scan_flow(flow). `zero_nonfinite`: NaN/inf vectors are
// read as zero motion (the caller checked the policy).
void encode_hsv28(const ViewF& flow, const FlowScan& scan, bool zero_nonfinite, std::uint8_t* out);

// float32 [3, 28, 28] (u, v, strain), each map min-max normalised to [0, scale] and
// area-averaged to 28x28. `out` may point into a larger NCHW batch.
void encode_uvs28(const ViewF& flow, const FlowScan& scan, bool zero_nonfinite, float scale,
                  float* out);

// HTNet's region composite: four 14x14 crops of a [3, 28, 28] map tiled into [3, 28, 28].
// landmarks: five (x, y) points in MTCNN order (left eye, right eye, nose, left and right mouth
// corner) on the 28x28 grid. `in` and `out` must not overlap.
void compose_regions(const float* in, const double* landmarks, float* out);

// The HSV->BGR step of encode_hsv28 alone (S = 255), on (rows, cols) planes of H and V, into
// interleaved BGR: for tests that check every (H, V) pair against cv2.cvtColor.
void hsv_to_bgr_u8(const std::uint8_t* hue, const std::uint8_t* value, int rows, int cols,
                   std::uint8_t* bgr);

// The CPU feature that decides which OpenCV code path we reproduce.
bool cpu_has_fma();

}  // namespace microexp
