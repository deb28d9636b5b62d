// Python boundary of the kernels: every argument is checked (type, dtype, shape, layout, size)
// before any memory is touched; the GIL is released only around pure C++ work.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "farneback.hpp"
#include "flow_encode.hpp"
#include "motion.hpp"
#include "region_flow.hpp"
#include "resize.hpp"
#include "template_match.hpp"

namespace py = pybind11;
using namespace microexp;

namespace {

std::string shape_of(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
    return s + (a.ndim() == 1 ? ",)" : ")");
}

std::string strides_of(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.strides(i));
    return s + (a.ndim() == 1 ? ",)" : ")");
}

// A number as Python would print it (std::to_string prints 1e-300 as 0.000000).
std::string number(double x) { return py::str(py::float_(x)).cast<std::string>(); }

// Output limits: the largest resize the kernels allocate, and the range of encode_uvs28's scale.
constexpr py::ssize_t kMaxResizeBytes = py::ssize_t(1) << 28;
constexpr double kMinUvsScale = 1e-30, kMaxUvsScale = 1e30;

std::string dtype_of(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

[[noreturn]] void fail_value(const std::string& fn, const std::string& name, const std::string& msg) {
    throw py::value_error(fn + ": '" + name + "' " + msg);
}

// numpy's dtype of T, compared by kind and size: an array that crossed a process boundary
// (pickle, multiprocessing, Ray) carries an equal dtype that is not numpy's own object.
template <typename T>
bool has_dtype_of(const py::array& a) {
    const py::dtype d = a.dtype(), want = py::dtype::of<T>();
    return d.is(want) || (d.kind() == want.kind() && d.itemsize() == want.itemsize());
}

enum class Use { input, output };

// An ndarray of T's dtype. Inputs in a foreign byte order or at an address T cannot be read
// from directly (np.frombuffer at an odd offset) are copied once into an aligned native array;
// an output must be both already, since it is written in place.
template <typename T>
py::array as_array(const py::handle& obj, const std::string& fn, const std::string& name,
                   const char* dtype_name, Use use = Use::input) {
    if (!py::isinstance<py::array>(obj))
        throw py::type_error(fn + ": '" + name + "' must be a numpy.ndarray of " + dtype_name +
                             ", got " + std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
    py::array a = py::reinterpret_borrow<py::array>(obj);
    if (!has_dtype_of<T>(a))
        throw py::type_error(fn + ": '" + name + "' must have dtype " + dtype_name + ", got " +
                             dtype_of(a));
    const char order = a.dtype().byteorder();
    const bool native = order == '=' || order == '|';
    const bool aligned = a.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_;
    if (native && aligned) return a;
    if (use == Use::output)
        fail_value(fn, name, native ? "must be aligned to its item size (a fresh numpy array is)"
                                    : "must have the machine's byte order, got dtype " + dtype_of(a));
    // A fresh array is aligned and native (np.ascontiguousarray would return a misaligned
    // C-contiguous array as it is).
    return a.attr("astype")(py::dtype::of<T>(), py::arg("order") = "C", py::arg("copy") = true);
}

// An image (rows, cols) or (rows, cols, channels) whose pixels are packed within each row;
// rows may be padded, as in a slice of a larger frame.
template <typename T>
View<T> image_view(const py::array& a, const std::string& fn, const std::string& name,
                   int min_cn, int max_cn) {
    if (a.ndim() != 2 && a.ndim() != 3)
        fail_value(fn, name, "must have shape (rows, cols) or (rows, cols, channels), got " +
                                 shape_of(a));
    const int cn = a.ndim() == 3 ? (int)a.shape(2) : 1;
    if (cn < min_cn || cn > max_cn)
        fail_value(fn, name, "must have " + std::to_string(min_cn) +
                                 (min_cn == max_cn ? "" : " to " + std::to_string(max_cn)) +
                                 " channel(s), got shape " + shape_of(a));
    if (a.shape(0) == 0 || a.shape(1) == 0) fail_value(fn, name, "is empty: shape " + shape_of(a));
    const py::ssize_t item = (py::ssize_t)sizeof(T);
    const bool packed = (a.ndim() == 2 || a.strides(2) == item) && a.strides(1) == cn * item &&
                        a.strides(0) >= a.shape(1) * cn * item && a.strides(0) % item == 0;
    if (!packed)
        fail_value(fn, name, "must be contiguous within rows (got strides " + strides_of(a) +
                                 " for shape " + shape_of(a) + "); pass numpy.ascontiguousarray(" +
                                 name + ")");
    return View<T>{static_cast<const T*>(a.data()), a.strides(0) / item, (int)a.shape(0),
                   (int)a.shape(1), cn};
}

// A writable, C-contiguous output of an exact shape and dtype, or a new one when `out` is None.
template <typename T>
py::array_t<T> output(const py::object& out, std::vector<py::ssize_t> shape, const std::string& fn,
                      const char* dtype_name) {
    if (out.is_none()) return py::array_t<T>(shape);
    py::array a = as_array<T>(out, fn, "out", dtype_name, Use::output);
    bool same = a.ndim() == (py::ssize_t)shape.size();
    for (std::size_t i = 0; same && i < shape.size(); ++i) same = a.shape(i) == shape[i];
    if (!same) {
        std::string want = "(";
        for (std::size_t i = 0; i < shape.size(); ++i)
            want += (i ? ", " : "") + std::to_string(shape[i]);
        fail_value(fn, "out", "must have shape " + want + "), got " + shape_of(a));
    }
    if (!(a.flags() & py::array::c_style))
        fail_value(fn, "out", "must be C-contiguous (a slice such as batch[i] of an NCHW buffer is)");
    if (!a.writeable()) fail_value(fn, "out", "is read-only");
    return py::reinterpret_borrow<py::array_t<T>>(a);
}

ViewF flow_view(const py::handle& obj, const std::string& fn) {
    py::array a = as_array<float>(obj, fn, "flow", "float32");
    if (a.ndim() != 3 || a.shape(2) != 2)
        fail_value(fn, "flow", "must have shape (rows, cols, 2), got " + shape_of(a));
    ViewF v = image_view<float>(a, fn, "flow", 2, 2);
    if (v.rows < kMapSize || v.cols < kMapSize)
        fail_value(fn, "flow", "must be at least 28x28 (the encoders only shrink), got shape " +
                                   shape_of(a));
    return v;
}

// One pass over the flow: its non-finite count (refused under the "raise" policy) and the
// scaling that keeps a huge finite flow's arithmetic finite.
FlowScan scanned_flow(const ViewF& flow, const std::string& policy, const std::string& fn, bool& zero) {
    if (policy != "zero" && policy != "raise")
        fail_value(fn, "nonfinite", "must be 'raise' or 'zero', got '" + policy + "'");
    zero = policy == "zero";
    const FlowScan scan = scan_flow(flow);
    if (!zero && scan.nonfinite)
        fail_value(fn, "flow", "contains " + std::to_string(scan.nonfinite) +
                                   " NaN or infinite value(s); fix the flow or pass nonfinite='zero'"
                                   " to read them as zero motion");
    return scan;
}

void check_template_fits(const View8& img, const View8& tpl, const std::string& fn) {
    if (img.cn != tpl.cn)
        fail_value(fn, "template", "must have the same number of channels as 'image' (" +
                                       std::to_string(img.cn) + "), got " + std::to_string(tpl.cn));
    if (tpl.rows > img.rows || tpl.cols > img.cols)
        fail_value(fn, "template", "(" + std::to_string(tpl.rows) + "x" + std::to_string(tpl.cols) +
                                       ") must not be larger than 'image' (" +
                                       std::to_string(img.rows) + "x" + std::to_string(img.cols) + ")");
}

struct ImagePair {
    py::array image, tpl;  // keep the arrays alive while views point into them
    View8 img_view, tpl_view;
};

ImagePair image_pair(const py::object& image, const py::object& tpl, const std::string& fn) {
    ImagePair p;
    p.image = as_array<std::uint8_t>(image, fn, "image", "uint8");
    p.tpl = as_array<std::uint8_t>(tpl, fn, "template", "uint8");
    p.img_view = image_view<std::uint8_t>(p.image, fn, "image", 1, 4);
    p.tpl_view = image_view<std::uint8_t>(p.tpl, fn, "template", 1, 4);
    check_template_fits(p.img_view, p.tpl_view, fn);
    return p;
}

// One Farneback object per stream: it caches the reference's expansions, so calls on one
// object are serialised (the GIL is released while it runs).
struct FarnebackHandle {
    explicit FarnebackHandle(const FarnebackParams& p) : impl(p) {}
    Farneback impl;
    std::mutex lock;
};

// One prepared template per tracked face; calls are serialised like FarnebackHandle's.
struct TemplateHandle {
    TemplateHandle(const View8& tpl, MatchLoopSet loops) : impl(tpl, loops) {}
    PyramidTemplate impl;
    std::mutex lock;
};

FarnebackParams farneback_params(double pyr_scale, int levels, int winsize, int iterations, int poly_n,
                                 double poly_sigma, bool portable) {
    const std::string fn = "FarnebackFlow";
    if (!(pyr_scale > 0 && pyr_scale < 1))
        fail_value(fn, "pyr_scale", "must be in (0, 1), got " + number(pyr_scale));
    if (levels < 0 || levels > 10) fail_value(fn, "levels", "must be in 0..10, got " + std::to_string(levels));
    if (winsize < 1 || winsize > 99) fail_value(fn, "winsize", "must be in 1..99, got " + std::to_string(winsize));
    if (iterations < 1 || iterations > 100)
        fail_value(fn, "iterations", "must be in 1..100, got " + std::to_string(iterations));
    if (poly_n < 1 || poly_n > 15) fail_value(fn, "poly_n", "must be in 1..15, got " + std::to_string(poly_n));
    if (!(poly_sigma >= 0) || !std::isfinite(poly_sigma))
        fail_value(fn, "poly_sigma", "must be a non-negative finite number, got " + number(poly_sigma));
    if (!expansion_invertible(poly_n, poly_sigma))
        fail_value(fn, "poly_sigma", "= " + number(poly_sigma) + " is too narrow for poly_n=" + std::to_string(poly_n) +
                                         ": the expansion's Gram matrix is singular there (OpenCV returns zero flow);"
                                         " use 0 (OpenCV's default, 0.3 * poly_n) or at least " +
                                         number(std::ceil(smallest_invertible_sigma(poly_n) * 1e3) / 1e3));
    return FarnebackParams{pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, portable};
}

}  // namespace

PYBIND11_MODULE(_kernels, m) {
    m.doc() = "Native kernels of microexp-edge (use the typed facade microexp.kernels).";

    m.def("check_match_args", [](const py::object& image, const py::object& tpl) {
        image_pair(image, tpl, "match_template");
    });

    m.def("ccorr_direct", [](const py::object& image, const py::object& tpl) {
        const std::string fn = "ccorr_direct";
        ImagePair p = image_pair(image, tpl, fn);
        py::array_t<std::int64_t> out({p.img_view.rows - p.tpl_view.rows + 1,
                                       p.img_view.cols - p.tpl_view.cols + 1});
        std::int64_t* dst = out.mutable_data();
        {
            py::gil_scoped_release nogil;
            ccorr_direct(p.img_view, p.tpl_view, dst);
        }
        return out;
    });

    m.def("ncc_map_from_ccorr", [](const py::object& image, const py::object& tpl,
                                   const py::object& ccorr) {
        const std::string fn = "ncc_map_from_ccorr";
        ImagePair p = image_pair(image, tpl, fn);
        const py::ssize_t rows = p.img_view.rows - p.tpl_view.rows + 1,
                          cols = p.img_view.cols - p.tpl_view.cols + 1;
        py::array cc = as_array<std::int64_t>(ccorr, fn, "ccorr", "int64");
        if (cc.ndim() != 2 || cc.shape(0) != rows || cc.shape(1) != cols ||
            !(cc.flags() & py::array::c_style))
            fail_value(fn, "ccorr", "must be a C-contiguous (" + std::to_string(rows) + ", " +
                                        std::to_string(cols) + ") array, got " + shape_of(cc));
        py::array_t<float> out({rows, cols});
        const std::int64_t* src = static_cast<const std::int64_t*>(cc.data());
        float* dst = out.mutable_data();
        {
            py::gil_scoped_release nogil;
            ncc_map_from_ccorr(p.img_view, p.tpl_view, src, dst);
        }
        return out;
    });

    m.def("match_pyramid", [](const py::object& image, const py::object& tpl, bool subpixel) {
        ImagePair p = image_pair(image, tpl, "match_template");
        Match r;
        {
            py::gil_scoped_release nogil;
            r = match_pyramid(p.img_view, p.tpl_view, subpixel);
        }
        return py::make_tuple(r.x, r.y, r.score, r.sub_x, r.sub_y);
    });

    m.def("resize_linear", [](const py::object& src, py::ssize_t rows, py::ssize_t cols,
                              const py::object& out) {
        const std::string fn = "resize_linear";
        py::array a = as_array<std::uint8_t>(src, fn, "src", "uint8");
        View8 v = image_view<std::uint8_t>(a, fn, "src", 1, 4);
        if (rows < 1 || cols < 1 || rows > 65536 || cols > 65536)
            fail_value(fn, "size", "must be between 1 and 65536 on both axes, got (" +
                                       std::to_string(cols) + ", " + std::to_string(rows) + ")");
        if (rows * cols * v.cn > kMaxResizeBytes)
            fail_value(fn, "size", "(" + std::to_string(cols) + ", " + std::to_string(rows) + ") with " +
                                       std::to_string(v.cn) + " channel(s) asks for " +
                                       std::to_string(rows * cols * v.cn >> 20) +
                                       " MiB; the limit is 256 MiB (an 8K BGR frame is 95 MiB)");
        std::vector<py::ssize_t> shape = {rows, cols};
        if (a.ndim() == 3) shape.push_back(v.cn);
        py::array_t<std::uint8_t> o = output<std::uint8_t>(out, shape, fn, "uint8");
        std::uint8_t* dst = o.mutable_data();
        {
            py::gil_scoped_release nogil;
            resize_linear_u8(v, dst, (std::ptrdiff_t)cols * v.cn, (int)rows, (int)cols);
        }
        return o;
    });

    m.def("resize_area", [](const py::object& src, py::ssize_t rows, py::ssize_t cols) {
        const std::string fn = "resize_area";
        py::array a = as_array<std::uint8_t>(src, fn, "src", "uint8");
        View8 v = image_view<std::uint8_t>(a, fn, "src", 1, 4);
        if (rows < 1 || cols < 1 || rows > v.rows || cols > v.cols)
            fail_value(fn, "size", "must shrink or keep the size of 'src' " + shape_of(a));
        std::vector<py::ssize_t> shape = {rows, cols};
        if (a.ndim() == 3) shape.push_back(v.cn);
        py::array_t<std::uint8_t> o(shape);
        std::uint8_t* dst = o.mutable_data();
        {
            py::gil_scoped_release nogil;
            resize_area_u8(v, dst, (int)rows, (int)cols);
        }
        return o;
    });

    m.def("encode_hsv28", [](const py::object& flow, const py::object& out,
                             const std::string& nonfinite) {
        const std::string fn = "encode_hsv28";
        py::array keep = as_array<float>(flow, fn, "flow", "float32");
        ViewF v = flow_view(keep, fn);
        bool zero = false;
        const FlowScan scan = scanned_flow(v, nonfinite, fn, zero);
        py::array_t<std::uint8_t> o = output<std::uint8_t>(out, {kMapSize, kMapSize, 3}, fn, "uint8");
        std::uint8_t* dst = o.mutable_data();
        {
            py::gil_scoped_release nogil;
            encode_hsv28(v, scan, zero, dst);
        }
        return o;
    });

    m.def("encode_uvs28", [](const py::object& flow, const py::object& out, double scale,
                             const std::string& nonfinite) {
        const std::string fn = "encode_uvs28";
        py::array keep = as_array<float>(flow, fn, "flow", "float32");
        ViewF v = flow_view(keep, fn);
        bool zero = false;
        const FlowScan scan = scanned_flow(v, nonfinite, fn, zero);
        // Kept well inside float32's normal range, so that [0, scale] survives the cast.
        if (!(scale >= kMinUvsScale && scale <= kMaxUvsScale))
            fail_value(fn, "scale", "must be a positive number from 1e-30 to 1e30, got " + number(scale));
        py::array_t<float> o = output<float>(out, {3, kMapSize, kMapSize}, fn, "float32");
        float* dst = o.mutable_data();
        {
            py::gil_scoped_release nogil;
            encode_uvs28(v, scan, zero, (float)scale, dst);
        }
        return o;
    });

    m.def("compose_regions", [](const py::object& map28, const py::object& landmarks,
                                const py::object& out) {
        const std::string fn = "compose_regions";
        py::array a = as_array<float>(map28, fn, "map28", "float32");
        if (a.ndim() != 3 || a.shape(0) != 3 || a.shape(1) != kMapSize || a.shape(2) != kMapSize ||
            !(a.flags() & py::array::c_style))
            fail_value(fn, "map28", "must be a C-contiguous (3, 28, 28) array, got " + shape_of(a));
        py::array_t<double, py::array::c_style | py::array::forcecast> lm;
        try {
            lm = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(landmarks);
        } catch (const py::error_already_set&) {
        }
        if (!lm || lm.ndim() != 2 || lm.shape(0) != 5 || lm.shape(1) != 2)
            fail_value(fn, "landmarks5", "must be five (x, y) points, shape (5, 2)");
        if (!(lm.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_))  // ensure() keeps misaligned input
            lm = lm.attr("astype")(py::dtype::of<double>(), py::arg("order") = "C", py::arg("copy") = true)
                     .cast<py::array_t<double, py::array::c_style | py::array::forcecast>>();
        for (py::ssize_t i = 0; i < 10; ++i)
            if (!std::isfinite(lm.data()[i]))
                fail_value(fn, "landmarks5", "contains NaN or infinite coordinates");
        py::array_t<float> o = output<float>(out, {3, kMapSize, kMapSize}, fn, "float32");
        const float* src = static_cast<const float*>(a.data());
        float* dst = o.mutable_data();
        const char* s0 = reinterpret_cast<const char*>(src);
        const char* d0 = reinterpret_cast<const char*>(dst);
        const std::size_t bytes = 3 * kMapSize * kMapSize * sizeof(float);
        if (s0 < d0 + bytes && d0 < s0 + bytes)
            fail_value(fn, "out", "must not overlap 'map28'");
        const double* pts = lm.data();
        {
            py::gil_scoped_release nogil;
            compose_regions(src, pts, dst);
        }
        return o;
    });

    m.def("region_motion", [](const py::object& flow, int step, int grid, int nonrigid_grid, const std::string& nonfinite) {
        const std::string fn = "region_motion";
        py::array keep = as_array<float>(flow, fn, "flow", "float32");
        if (keep.ndim() != 3 || keep.shape(2) != 2)
            fail_value(fn, "flow", "must have shape (rows, cols, 2), got " + shape_of(keep));
        ViewF v = image_view<float>(keep, fn, "flow", 2, 2);
        if (step < 1) fail_value(fn, "step", "must be >= 1, got " + std::to_string(step));
        if (nonfinite != "zero" && nonfinite != "raise")
            fail_value(fn, "nonfinite", "must be 'raise' or 'zero', got '" + nonfinite + "'");
        if (grid < 1) fail_value(fn, "grid", "must be >= 1, got " + std::to_string(grid));
        if (nonrigid_grid < 0)
            fail_value(fn, "nonrigid_grid", "must be >= 0 (0: not computed), got " + std::to_string(nonrigid_grid));
        const int largest = std::max(grid, nonrigid_grid);
        if (sample_count(v.rows, step) < largest || sample_count(v.cols, step) < largest)
            fail_value(fn, "flow", "of shape " + shape_of(keep) + " gives fewer than " +
                                       (nonrigid_grid > grid ? "nonrigid_grid=" : "grid=") + std::to_string(largest) +
                                       " samples per axis at step=" + std::to_string(step));
        bool zero = nonfinite == "zero";
        if (!zero) scanned_flow(v, nonfinite, fn, zero);  // refuses NaN/inf (samples or not)
        MotionScores s;
        {
            py::gil_scoped_release nogil;
            s = region_motion(v, step, grid, nonrigid_grid, zero);
        }
        return py::make_tuple(s.motion, s.upper, s.lower, s.local, s.nonrigid);
    }, py::arg("flow"), py::arg("step"), py::arg("grid"), py::arg("nonrigid_grid"), py::arg("nonfinite"));

    m.def("region_flow", [](const py::object& flow, const py::object& boxes, const py::object& out,
                            const std::string& nonfinite) {
        const std::string fn = "region_flow";
        py::array keep = as_array<float>(flow, fn, "flow", "float32");
        if (keep.ndim() != 3 || keep.shape(2) != 2)
            fail_value(fn, "flow", "must have shape (rows, cols, 2), got " + shape_of(keep));
        ViewF v = image_view<float>(keep, fn, "flow", 2, 2);
        py::array b = as_array<std::int32_t>(boxes, fn, "boxes", "int32");
        if (b.ndim() != 2 || b.shape(1) != 4 || b.shape(0) < 1)
            fail_value(fn, "boxes", "must have shape (regions, 4) with at least one region, got " + shape_of(b));
        const int count = (int)b.shape(0);
        std::vector<RegionBox> regions((std::size_t)count);
        for (int k = 0; k < count; ++k) {
            const char* row = static_cast<const char*>(b.data()) + k * b.strides(0);
            int c[4];
            for (int j = 0; j < 4; ++j) c[j] = *reinterpret_cast<const std::int32_t*>(row + j * b.strides(1));
            if (!(0 <= c[0] && c[0] < c[2] && c[2] <= v.cols && 0 <= c[1] && c[1] < c[3] && c[3] <= v.rows))
                fail_value(fn, "boxes", "row " + std::to_string(k) + " (" + std::to_string(c[0]) + ", " +
                                            std::to_string(c[1]) + ", " + std::to_string(c[2]) + ", " +
                                            std::to_string(c[3]) + ") must be x0 < x1 <= " + std::to_string(v.cols) +
                                            ", y0 < y1 <= " + std::to_string(v.rows) + " with x0, y0 >= 0");
            regions[(std::size_t)k] = RegionBox{c[0], c[1], c[2], c[3]};
        }
        bool zero = false;
        scanned_flow(v, nonfinite, fn, zero);  // refuses NaN/inf under 'raise'
        py::array_t<float> o = output<float>(out, {count, kRegionStats}, fn, "float32");
        float* dst = o.mutable_data();
        {
            py::gil_scoped_release nogil;
            region_flow(v, regions.data(), count, zero, dst);
        }
        return o;
    }, py::arg("flow"), py::arg("boxes"), py::arg("out"), py::arg("nonfinite"));

    py::class_<TemplateHandle>(m, "PyramidTemplate")
        .def(py::init([](const py::object& tpl, const std::string& loops) {
            const std::string fn = "TemplateMatcher";
            MatchLoopSet set = MatchLoopSet::best;
            if (loops == "avx2") set = MatchLoopSet::avx2;
            else if (loops == "portable") set = MatchLoopSet::portable;
            else if (loops != "best")
                fail_value(fn, "loops", "must be 'best', 'avx2' or 'portable', got '" + loops + "'");
            py::array a = as_array<std::uint8_t>(tpl, fn, "template", "uint8");
            return std::make_unique<TemplateHandle>(image_view<std::uint8_t>(a, fn, "template", 1, 4), set);
        }), py::arg("template"), py::arg("loops") = "best")
        .def("match", [](TemplateHandle& h, const py::object& image, bool subpixel, int finest_level) {
            const std::string fn = "TemplateMatcher.match";
            if (finest_level < 0 || finest_level > 4)
                fail_value(fn, "finest_level", "must be 0 to 4, got " + std::to_string(finest_level));
            py::array a = as_array<std::uint8_t>(image, fn, "image", "uint8");
            View8 v = image_view<std::uint8_t>(a, fn, "image", 1, 4);
            View8 t{nullptr, 0, h.impl.rows(), h.impl.cols(), h.impl.channels()};
            check_template_fits(v, t, fn);
            Match r;
            {
                py::gil_scoped_release nogil;
                std::lock_guard<std::mutex> guard(h.lock);
                r = h.impl.match(v, subpixel, finest_level);
            }
            return py::make_tuple(r.x, r.y, r.score, r.sub_x, r.sub_y);
        }, py::arg("image"), py::arg("subpixel") = false, py::arg("finest_level") = 0)
        .def_property_readonly("shape", [](TemplateHandle& h) {
            return py::make_tuple(h.impl.rows(), h.impl.cols(), h.impl.channels());
        })
        .def_property_readonly("depth", [](TemplateHandle& h) { return h.impl.depth(); })
        .def("level", [](TemplateHandle& h, int l) {
            // A copy of the template's level l (rows, cols, channels): for tests of the halving.
            if (l < 0 || l > h.impl.depth())
                fail_value("TemplateMatcher.level", "level", "= " + std::to_string(l) + " is outside 0.." +
                                      std::to_string(h.impl.depth()));
            const View8& v = h.impl.level(l);
            py::array_t<std::uint8_t> out({v.rows, v.cols, v.cn});
            for (int r = 0; r < v.rows; ++r)
                std::memcpy(out.mutable_data(r), v.row(r), (std::size_t)v.cols * v.cn);
            return out;
        }, py::arg("level"));

    py::class_<FarnebackHandle>(m, "Farneback")
        .def(py::init([](double pyr_scale, int levels, int winsize, int iterations, int poly_n,
                         double poly_sigma, bool portable) {
            return std::make_unique<FarnebackHandle>(
                farneback_params(pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, portable));
        }), py::arg("pyr_scale"), py::arg("levels"), py::arg("winsize"), py::arg("iterations"),
            py::arg("poly_n"), py::arg("poly_sigma"), py::arg("portable") = false)
        .def("calc", [](FarnebackHandle& h, const py::object& prev, const py::object& next,
                        const py::object& out) {
            const std::string fn = "FarnebackFlow";
            py::array a = as_array<std::uint8_t>(prev, fn, "prev", "uint8");
            py::array b = as_array<std::uint8_t>(next, fn, "next", "uint8");
            if (a.ndim() != 2) fail_value(fn, "prev", "must be a gray image (rows, cols), got shape " + shape_of(a));
            if (b.ndim() != 2) fail_value(fn, "next", "must be a gray image (rows, cols), got shape " + shape_of(b));
            View8 va = image_view<std::uint8_t>(a, fn, "prev", 1, 1);
            View8 vb = image_view<std::uint8_t>(b, fn, "next", 1, 1);
            if (va.rows != vb.rows || va.cols != vb.cols)
                fail_value(fn, "next", "must have the shape of 'prev' " + shape_of(a) + ", got " + shape_of(b));
            if (va.rows < 16 || va.cols < 16 || va.rows > 8192 || va.cols > 8192)
                fail_value(fn, "prev", "must be between 16x16 and 8192x8192, got shape " + shape_of(a));
            py::array_t<float> o = output<float>(out, {va.rows, va.cols, 2}, fn, "float32");
            float* dst = o.mutable_data();
            {
                py::gil_scoped_release nogil;
                std::lock_guard<std::mutex> guard(h.lock);
                h.impl.calc(va, vb, dst);
            }
            return o;
        }, py::arg("prev"), py::arg("next"), py::arg("out") = py::none())
        .def_property_readonly("reference_reuses", [](FarnebackHandle& h) { return h.impl.reference_reuses(); });

    m.def("cpu_has_fma", &cpu_has_fma);

    // Test hook: the HSV->BGR step of encode_hsv28 by itself (S = 255).
    m.def("_hsv_to_bgr", [](const py::object& hue, const py::object& value) {
        const std::string fn = "_hsv_to_bgr";
        py::array h = as_array<std::uint8_t>(hue, fn, "hue", "uint8");
        py::array v = as_array<std::uint8_t>(value, fn, "value", "uint8");
        if (h.ndim() != 2 || v.ndim() != 2 || h.shape(0) != v.shape(0) || h.shape(1) != v.shape(1))
            fail_value(fn, "value", "must be 2-D and shaped like 'hue'");
        if (!(h.flags() & py::array::c_style) || !(v.flags() & py::array::c_style))
            fail_value(fn, "hue", "and 'value' must be C-contiguous");
        const py::ssize_t rows = h.shape(0), cols = h.shape(1);
        const std::uint8_t* hp = static_cast<const std::uint8_t*>(h.data());
        for (py::ssize_t i = 0; i < rows * cols; ++i)
            if (hp[i] > 180) fail_value(fn, "hue", "must be in 0..180");
        py::array_t<std::uint8_t> o({rows, cols, (py::ssize_t)3});
        hsv_to_bgr_u8(hp, static_cast<const std::uint8_t*>(v.data()), (int)rows, (int)cols,
                      o.mutable_data());
        return o;
    });
}
