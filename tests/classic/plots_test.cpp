// The SVG pictures: a gate that splits on the sign of x1 colours the left and right halves of the
// partition plot with two colours; the confusion matrix counts and prints every cell; models or
// inputs the pictures cannot show are clear errors.
#include "classic/plots.h"

#include <regex>

#include <gtest/gtest.h>

#include "core/error.h"

namespace moe::classic {
namespace {

TabularEncoding two_numeric_inputs() {
  TabularEncoding e;
  e.features = {{"a", true, 0.0, 1.0, {}}, {"b", true, 0.0, 1.0, {}}};
  e.target = "y";
  return e;
}

TEST(ClassicPlots, PartitionPlotColoursEachHalfByItsExpert) {
  Mixture m(2, 1, {Task::regression, {"linear", "linear"}, {}, 1e-4, 1});
  auto p = m.parameters();
  p.at("gate.coef") = Mat{{0.0}, {-50.0}, {0.0}};  // expert 0 where a < 0, expert 1 where a > 0
  m.set_parameters(p);
  PartitionPlot plot;
  plot.points = Mat{{-1.0, -1.0}, {1.0, 1.0}};
  plot.grid = 10;
  const std::string svg = gate_partition_svg(m, two_numeric_inputs(), plot);
  ASSERT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  // Every grid row is two runs: 5 cells of expert 0's colour, then 5 of expert 1's.
  const std::regex run("<rect x=\"([0-9.]+)\" y=\"[0-9.]+\" width=\"([0-9.]+)\" height=\"[0-9.]+\" fill=\"(#[0-9A-F]{6})\"/>");
  const size_t from = svg.find("crispEdges"), to = svg.find("</g>", from);
  ASSERT_NE(from, std::string::npos);
  const std::string cells = svg.substr(from, to - from);  // the grid, without the legend
  int left = 0, right = 0;
  for (auto it = std::sregex_iterator(cells.begin(), cells.end(), run); it != std::sregex_iterator(); ++it) {
    const std::string colour = (*it)[3];
    if (colour == "#E69F00") ++left;
    if (colour == "#56B4E9") ++right;
  }
  EXPECT_EQ(left, 10);
  EXPECT_EQ(right, 10);
  EXPECT_NE(svg.find("expert 1 (linear)"), std::string::npos);
  EXPECT_NE(svg.find("<circle cx=\"50\" cy=\"530\""), std::string::npos);  // (-1, -1): the lower left corner
}

TEST(ClassicPlots, PartitionPlotNeedsTwoNumericInputs) {
  Mixture m(3, 1, {Task::regression, {"linear", "linear"}, {}, 1e-4, 1});
  TabularEncoding e = two_numeric_inputs();
  e.features.push_back({"c", true, 0.0, 1.0, {}});
  EXPECT_THROW(gate_partition_svg(m, e, {}), Error);
  Mixture m2(2, 1, {Task::regression, {"linear", "linear"}, {}, 1e-4, 1});
  TabularEncoding cat = two_numeric_inputs();
  cat.features[1] = {"b", false, 0, 1, {"x", "y"}};  // 1 + 2 inputs from a categorical column
  EXPECT_THROW(gate_partition_svg(m2, cat, {}), Error);
}

TEST(ClassicPlots, ConfusionMatrixCountsEveryCell) {
  const Mat Y = Mat{{1, 0, 0}, {0, 1, 0}, {0, 1, 0}, {0, 0, 1}, {1, 0, 0}};
  const Mat P = Mat{{0.9, 0.1, 0}, {0.2, 0.7, 0.1}, {0.6, 0.3, 0.1}, {0, 0.2, 0.8}, {0.1, 0.1, 0.8}};
  const auto c = confusion_counts(P, Y);
  const std::vector<std::vector<int64_t>> expected{{1, 0, 1}, {1, 1, 0}, {0, 0, 1}};
  EXPECT_EQ(c, expected);
  const std::string svg = confusion_svg({"a<b", "q", "r"}, c);
  EXPECT_NE(svg.find("a&lt;b"), std::string::npos);  // labels escaped
  const std::regex cell(">([0-9]+)</text>");
  int64_t total = 0, cells = 0;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), cell); it != std::sregex_iterator(); ++it) total += std::stoll((*it)[1]), ++cells;
  EXPECT_EQ(cells, 9);
  EXPECT_EQ(total, 5);
  EXPECT_THROW(confusion_svg({"a", "b"}, c), Error);
}

}  // namespace
}  // namespace moe::classic
