// Normalised cross-correlation with the definition of OpenCV's TM_CCOEFF_NORMED.
#pragma once
#include <cstdint>
#include <memory>

#include "image_view.hpp"

namespace microexp {

struct Match {
    int x = 0, y = 0;
    float score = 0.f;
    double sub_x = 0.0, sub_y = 0.0;  // parabola-refined location (equals x, y when not refined)
};

// Exact correlation sums sum(T * I) at every placement, computed directly (cost grows with
// placements x template size; the Python facade uses an FFT for large problems).
void ccorr_direct(const View8& img, const View8& tpl, std::int64_t* out);

// Scores from exact correlation sums, reproducing OpenCV's normalisation arithmetic.
void ncc_map_from_ccorr(const View8& img, const View8& tpl, const std::int64_t* ccorr, float* out);

// Coarse-to-fine search; final scores are the exact-mode scores at the visited placements.
Match match_pyramid(const View8& img, const View8& tpl, bool subpixel);

// The same search with the template's side prepared once (a copy of the template, its
// halved levels and their statistics): for tracking, where one template meets every frame.
// match() is not thread-safe (it reuses scratch buffers); the caller serialises calls.
// `loops`: which row loops to use; anything but `best` is for tests comparing them.
enum class MatchLoopSet { best, avx2, portable };

class PyramidTemplate {
public:
    explicit PyramidTemplate(const View8& tpl, MatchLoopSet loops = MatchLoopSet::best);
    ~PyramidTemplate();
    PyramidTemplate(const PyramidTemplate&) = delete;
    PyramidTemplate& operator=(const PyramidTemplate&) = delete;
    // `finest` > 0 stops the refinement at that pyramid level (1 = half resolution) and
    // scales its parabola-refined position back to the nearest full-resolution placement;
    // the score is then that level's. A faster, coarser tracking.
    Match match(const View8& img, bool subpixel, int finest = 0);
    int rows() const;
    int cols() const;
    int channels() const;
    int depth() const;                  // halved levels prepared (0 = the template alone)
    const View8& level(int l) const;    // the template at level l (0 = as given)

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace microexp
