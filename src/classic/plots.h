#pragma once
// SVG pictures of a fitted classic mixture (moe predict --gate-plot / --confusion): plain SVG 1.1
// text that browsers and vector editors open, written without a plotting library (Debian has none
// for C++ that writes SVG without a display stack).
#include <string>
#include <vector>

#include "classic/mixture.h"
#include "classic/tabular.h"

namespace moe::classic {

// How the gates divide a 2-D input space: each cell of a grid over [x_min, x_max] x [y_min, y_max]
// (the table's units) coloured by the expert of largest gate weight, the points X_raw [n, 2] drawn
// on top. moe::Error unless the model has exactly two numeric inputs.
struct PartitionPlot {
  Mat points;           // [n, 2] in the table's units (may be empty)
  int grid = 120;       // cells per side
  int size_px = 480;
};
std::string gate_partition_svg(const Mixture& mixture, const TabularEncoding& encoding, const PartitionPlot& plot);

// Confusion matrix: rows the true class, columns the predicted one; counts [K, K].
std::string confusion_svg(const std::vector<std::string>& classes, const std::vector<std::vector<int64_t>>& counts);
// counts[true][predicted] from one-hot targets Y and predictions P ([n, K] each).
std::vector<std::vector<int64_t>> confusion_counts(const Mat& P, const Mat& Y);

}  // namespace moe::classic
