// Dense optical flow by Farneback's polynomial expansion, with the arithmetic of
// cv::calcOpticalFlowFarneback (box-filter variant, flags=0): the same pyramid (Gaussian
// pre-smoothing and bilinear shrinking per level), the same polynomial expansion, border
// weights, regularisation and update schedule, so the flow agrees with OpenCV's to float
// rounding. What it adds: the reference image's polynomial expansions are kept between calls
// (the runtime compares every frame with one onset frame), all buffers are reused (no
// allocation per frame once the size is set), and the inner loops are written to vectorise.
#pragma once
#include <cstdint>
#include <vector>

#include "farneback_rows.hpp"
#include "image_view.hpp"

namespace microexp {

struct ResizeScratch {  // taps and filtered rows of a bilinear resize, reused between calls
    std::vector<int> xi, yi;
    std::vector<float> xw, yw, rows;
};

struct FarnebackParams {
    double pyr_scale = 0.5;
    int levels = 3;
    int winsize = 15;
    int iterations = 3;
    int poly_n = 5;
    double poly_sigma = 1.2;
    bool portable = false;  // force the portable row loops (tests compare them with AVX2's)
};

// Whether OpenCV can invert the polynomial expansion's Gram matrix for (poly_n, poly_sigma):
// its Cholesky factorisation needs every pivot >= DBL_EPSILON. Where it fails (a Gaussian much
// narrower than a pixel, sigma from about 1.2e-7 to 0.16), cv::calcOpticalFlowFarneback replaces
// the inverse by zeros and returns zero flow; we refuse those settings instead.
bool expansion_invertible(int poly_n, double poly_sigma);

// The smallest poly_sigma >= FLT_EPSILON for which expansion_invertible holds (to 1e-4).
double smallest_invertible_sigma(int poly_n);

class Farneback {
public:
    explicit Farneback(const FarnebackParams& p);

    // Flow from `prev` to `next` (gray, same size) into `flow`: rows x cols x 2 floats, packed.
    // `prev` is compared byte for byte with the last call's; when equal its expansions are reused.
    void calc(const View8& prev, const View8& next, float* flow);

    long long reference_reuses() const { return reuses_; }

private:
    struct Level {
        int rows = 0, cols = 0;
        std::vector<float> R0;      // reference: 5 coefficient planes (y, x, y^2, x^2, xy)
        std::vector<float> R1;      // current image: the 5 coefficients interleaved per pixel
        std::vector<float> wx;      // per-column border weight
        std::vector<float> flow;    // 2 per pixel (unused at level 0: the caller's buffer)
    };

    void prepare(int rows, int cols);
    void load(const View8& img);  // into fimg_ as float, once per image
    void expand(int level, std::vector<float>& R);  // of fimg_ at `level`
    void update_matrices(const Level& L, const float* flow);
    void update_flow(Level& L, float* flow, bool update_after);

    FarnebackParams p_;
    const FarnebackRows* rows_fn_;
    // Expansion filters: g, x*g, x*x*g on -n..n, and the inverse-Gram entries that turn
    // the filter responses into polynomial coefficients.
    std::vector<float> g_, xg_, xxg_;
    double ig_[4] = {};  // ig11, ig03, ig33, ig55

    int rows_ = 0, cols_ = 0;
    std::vector<Level> levels_;            // [0] = full size
    std::vector<std::vector<float>> smooth_;  // per level: Gaussian pre-smoothing kernel

    // Scratch, sized once per frame size.
    std::vector<float> fimg_, blurred_, tmp_, shrunk_, rowbuf_, M_, R0_, bsum_, planes_;
    std::vector<double> vsum_, hsum_;
    ResizeScratch resize_;

    std::vector<std::uint8_t> ref_copy_;  // the prev image the cached R0 were built from
    bool ref_valid_ = false;
    long long reuses_ = 0;
};

}  // namespace microexp
