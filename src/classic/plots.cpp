#include "classic/plots.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "core/error.h"

namespace moe::classic {

namespace {
// Colour-blind-safe qualitative palette (Okabe & Ito), repeated past 8 experts.
const char* kPalette[] = {"#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#999999"};

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.4g", v);
  return b;
}
}  // namespace

std::string gate_partition_svg(const Mixture& mixture, const TabularEncoding& enc, const PartitionPlot& plot) {
  if (enc.features.size() != 2 || !enc.features[0].numeric || !enc.features[1].numeric || enc.inputs() != 2)
    throw Error("[classic] a gate partition plot needs a model with exactly two numeric input columns (this one has " +
                std::to_string(enc.inputs()) + " inputs from " + std::to_string(enc.features.size()) + " columns)");
  if (plot.grid < 2 || plot.grid > 1000 || plot.size_px < 50) throw Error("[classic] gate partition plot: bad grid or size");
  // The range: the points' when given, else +-3 standard deviations of the training data.
  double lo[2], hi[2];
  for (int a = 0; a < 2; ++a) {
    const auto& f = enc.features[size_t(a)];
    lo[a] = f.mean - 3 * f.scale, hi[a] = f.mean + 3 * f.scale;
    if (plot.points.rows() > 0) lo[a] = plot.points.col(a).minCoeff(), hi[a] = plot.points.col(a).maxCoeff();
    if (!(hi[a] > lo[a])) lo[a] -= 1, hi[a] += 1;
  }
  const int G = plot.grid, S = plot.size_px, margin = 50;
  Mat grid(int64_t(G) * G, 2);
  for (int i = 0; i < G; ++i)
    for (int j = 0; j < G; ++j) {
      const double x = lo[0] + (hi[0] - lo[0]) * (j + 0.5) / G, y = lo[1] + (hi[1] - lo[1]) * (i + 0.5) / G;
      grid(int64_t(i) * G + j, 0) = (x - enc.features[0].mean) / enc.features[0].scale;
      grid(int64_t(i) * G + j, 1) = (y - enc.features[1].mean) / enc.features[1].scale;
    }
  const Mat g = mixture.gate(grid);
  std::ostringstream o;
  const int W = S + 2 * margin + 170, H = S + 2 * margin;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H << "\" viewBox=\"0 0 " << W << " " << H << "\">\n";
  o << "<title>gate partition: the expert of largest gate weight</title>\n";
  o << "<g transform=\"translate(30 0)\">\n";  // room for the y axis' labels
  o << "<g shape-rendering=\"crispEdges\">\n";
  const double cell = double(S) / G;
  for (int i = 0; i < G; ++i)
    for (int j = 0; j < G;) {
      // One rectangle per run of cells with the same expert along the row.
      auto winner = [&](int jj) {
        Eigen::Index k;
        g.row(int64_t(i) * G + jj).maxCoeff(&k);
        return int64_t(k);
      };
      const int64_t k = winner(j);
      int end = j + 1;
      while (end < G && winner(end) == k) ++end;
      // Row i = 0 is the lowest y: drawn at the bottom.
      o << "<rect x=\"" << num(margin + j * cell) << "\" y=\"" << num(margin + (G - 1 - i) * cell) << "\" width=\""
        << num((end - j) * cell + 0.05) << "\" height=\"" << num(cell + 0.05) << "\" fill=\"" << kPalette[k % 8] << "\"/>\n";
      j = end;
    }
  o << "</g>\n<g fill=\"black\" fill-opacity=\"0.5\">\n";
  for (int64_t p = 0; p < plot.points.rows(); ++p) {
    const double px = margin + S * (plot.points(p, 0) - lo[0]) / (hi[0] - lo[0]);
    const double py = margin + S * (1 - (plot.points(p, 1) - lo[1]) / (hi[1] - lo[1]));
    o << "<circle cx=\"" << num(px) << "\" cy=\"" << num(py) << "\" r=\"1.5\"/>\n";
  }
  o << "</g>\n<g font-family=\"sans-serif\" font-size=\"12\">\n";
  o << "<rect x=\"" << margin << "\" y=\"" << margin << "\" width=\"" << S << "\" height=\"" << S << "\" fill=\"none\" stroke=\"black\"/>\n";
  for (int t = 0; t <= 4; ++t) {
    const double fx = lo[0] + (hi[0] - lo[0]) * t / 4, fy = lo[1] + (hi[1] - lo[1]) * t / 4;
    o << "<text x=\"" << num(margin + S * t / 4.0) << "\" y=\"" << margin + S + 16 << "\" text-anchor=\"middle\">" << num(fx) << "</text>\n";
    o << "<text x=\"" << margin - 6 << "\" y=\"" << num(margin + S * (1 - t / 4.0) + 4) << "\" text-anchor=\"end\">" << num(fy) << "</text>\n";
  }
  o << "<text x=\"" << margin + S / 2 << "\" y=\"" << H - 8 << "\" text-anchor=\"middle\">" << escape(enc.features[0].column) << "</text>\n";
  o << "<text transform=\"translate(-16 " << margin + S / 2 << ") rotate(-90)\" text-anchor=\"middle\">" << escape(enc.features[1].column) << "</text>\n";
  for (int64_t k = 0; k < mixture.num_experts(); ++k) {
    const int y = margin + 10 + int(k) * 20;
    o << "<rect x=\"" << margin + S + 16 << "\" y=\"" << y - 10 << "\" width=\"12\" height=\"12\" fill=\"" << kPalette[k % 8] << "\"/>\n";
    o << "<text x=\"" << margin + S + 34 << "\" y=\"" << y << "\">expert " << k << " (" << escape(mixture.config().kinds[size_t(k)]) << ")</text>\n";
  }
  o << "</g>\n</g>\n</svg>\n";
  return o.str();
}

std::vector<std::vector<int64_t>> confusion_counts(const Mat& P, const Mat& Y) {
  MOE_ASSERT(P.rows() == Y.rows() && P.cols() == Y.cols());
  std::vector<std::vector<int64_t>> c(size_t(P.cols()), std::vector<int64_t>(size_t(P.cols()), 0));
  for (int64_t i = 0; i < P.rows(); ++i) {
    Eigen::Index p, y;
    P.row(i).maxCoeff(&p);
    Y.row(i).maxCoeff(&y);
    ++c[size_t(y)][size_t(p)];
  }
  return c;
}

std::string confusion_svg(const std::vector<std::string>& classes, const std::vector<std::vector<int64_t>>& counts) {
  const int K = int(classes.size());
  if (K < 1 || counts.size() != classes.size()) throw Error("[classic] confusion matrix: counts and classes disagree");
  int64_t most = 1;
  for (const auto& r : counts) {
    if (r.size() != classes.size()) throw Error("[classic] confusion matrix: counts and classes disagree");
    for (int64_t v : r) most = std::max(most, v);
  }
  const int cell = std::max(24, std::min(60, 600 / K)), left = 120, top = 90;
  const int W = left + K * cell + 20, H = top + K * cell + 20;
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H << "\" viewBox=\"0 0 " << W << " " << H << "\">\n";
  o << "<title>confusion matrix: rows true class, columns predicted</title>\n<g font-family=\"sans-serif\" font-size=\"12\">\n";
  o << "<text x=\"" << left + K * cell / 2 << "\" y=\"16\" text-anchor=\"middle\">predicted</text>\n";
  o << "<text transform=\"translate(14 " << top + K * cell / 2 << ") rotate(-90)\" text-anchor=\"middle\">true</text>\n";
  for (int k = 0; k < K; ++k) {
    o << "<text transform=\"translate(" << left + k * cell + cell / 2 + 4 << " " << top - 6 << ") rotate(-60)\">" << escape(classes[size_t(k)]) << "</text>\n";
    o << "<text x=\"" << left - 6 << "\" y=\"" << top + k * cell + cell / 2 + 4 << "\" text-anchor=\"end\">" << escape(classes[size_t(k)]) << "</text>\n";
  }
  for (int r = 0; r < K; ++r)
    for (int c = 0; c < K; ++c) {
      const int64_t v = counts[size_t(r)][size_t(c)];
      const double shade = double(v) / double(most);
      const int level = int(std::lround(255 * (1 - 0.85 * shade)));
      char fill[16];
      std::snprintf(fill, sizeof fill, "#%02x%02xff", level, level);
      o << "<rect x=\"" << left + c * cell << "\" y=\"" << top + r * cell << "\" width=\"" << cell << "\" height=\"" << cell << "\" fill=\""
        << fill << "\" stroke=\"white\"/>\n";
      o << "<text x=\"" << left + c * cell + cell / 2 << "\" y=\"" << top + r * cell + cell / 2 + 4 << "\" text-anchor=\"middle\" fill=\""
        << (shade > 0.6 ? "white" : "black") << "\">" << v << "</text>\n";
    }
  o << "</g>\n</svg>\n";
  return o.str();
}

}  // namespace moe::classic
