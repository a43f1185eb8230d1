#include "train/plots.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/atomic_file.h"

namespace moe {

namespace {

// SVG by hand: a few rectangles, lines and labels need no plotting library.
std::string fmt(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.4g", v);
  return b;
}

struct Series {
  std::vector<double> x, y;
};

// Round tick positions (1, 2 or 5 times a power of ten) covering [lo, hi], about `want` of them.
std::vector<double> nice_ticks(double lo, double hi, int want) {
  const double raw = (hi - lo) / std::max(1, want);
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  const double step = raw / p < 1.5 ? p : raw / p < 3.5 ? 2 * p : raw / p < 7.5 ? 5 * p : 10 * p;
  std::vector<double> t;
  for (double v = std::ceil(lo / step) * step; v <= hi + 1e-9 * step; v += step) t.push_back(std::abs(v) < 1e-12 ? 0 : v);
  return t;
}

// Diverging colour for a load share against the balanced share `mean`: white at balance, red above
// (full red at 4x), blue below (full blue at a quarter), on a log2 scale; grey for an idle expert.
std::string load_color(double share, double mean) {
  if (share <= 0) return "rgb(200,200,200)";
  const double r = std::clamp(std::log2(share / mean) / 2.0, -1.0, 1.0);
  const int fade = int(255 * (1 - std::abs(r)));
  char b[32];
  if (r >= 0) std::snprintf(b, sizeof b, "rgb(%d,%d,%d)", 255, fade, fade);
  else std::snprintf(b, sizeof b, "rgb(%d,%d,%d)", fade, fade, 255);
  return b;
}

// The colour scale of load_color as a labelled bar at (x, y).
std::string load_legend(double x, double y, double mean) {
  std::ostringstream o;
  const double w = 160, h = 10;
  for (int i = 0; i < 40; ++i) {
    const double share = mean * std::pow(2.0, -2.0 + 4.0 * (i + 0.5) / 40);
    o << "<rect x='" << x + w * i / 40 << "' y='" << y << "' width='" << w / 40 + 0.5 << "' height='" << h
      << "' fill='" << load_color(share, mean) << "'/>";
  }
  const char* labels[] = {"1/4x", "1/2x", "balanced", "2x", "4x"};
  for (int i = 0; i < 5; ++i)
    o << "<text x='" << x + w * i / 4 << "' y='" << y + h + 12 << "' text-anchor='middle' font-size='10'>" << labels[i]
      << "</text>";
  o << "<rect x='" << x + w + 14 << "' y='" << y << "' width='10' height='" << h << "' fill='" << load_color(0, mean)
    << "'/><text x='" << x + w + 28 << "' y='" << y + 9 << "' font-size='10'>idle</text>\n";
  return o.str();
}

std::string line_chart(const std::vector<std::pair<std::string, Series>>& series, const std::string& title,
                       const std::string& ylabel) {
  const double W = 720, H = 420, L = 70, R = 160, T = 40, B = 50;
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  for (auto& [name, s] : series)
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.y[i])) continue;
      x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, s.y[i]), y1 = std::max(y1, s.y[i]);
    }
  if (x0 > x1) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 == x0) x1 = x0 + 1;
  // The first steps' loss (ln 256 = 5.5 for bytes) would squash the rest of the curve: the top of the
  // axis is the highest value after the first 5% of the steps; earlier points are clipped to it.
  double top = -1e300;
  for (auto& [name, s] : series)
    for (size_t i = 0; i < s.x.size(); ++i)
      if (std::isfinite(s.y[i]) && s.x[i] >= x0 + 0.05 * (x1 - x0)) top = std::max(top, s.y[i]);
  const bool clipped = top > -1e300 && top < y1;
  if (clipped) y1 = top;
  if (y1 == y0) y1 = y0 + 1;
  const double pad = 0.05 * (y1 - y0);
  y0 -= pad, y1 += pad;
  auto px = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double y) { return T + (1 - (std::min(y, y1) - y0) / (y1 - y0)) * (H - T - B); };
  std::ostringstream o;
  o << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H
    << "' font-family='sans-serif' font-size='12'>\n<rect width='100%' height='100%' fill='white'/>\n";
  o << "<text x='" << W / 2 << "' y='22' text-anchor='middle' font-size='15'>" << title << "</text>\n";
  for (double yv : nice_ticks(y0, y1, 6)) {
    o << "<line x1='" << L << "' x2='" << W - R << "' y1='" << py(yv) << "' y2='" << py(yv) << "' stroke='#ddd'/>\n";
    o << "<text x='" << L - 6 << "' y='" << py(yv) + 4 << "' text-anchor='end'>" << fmt(yv) << "</text>\n";
  }
  for (double xv : nice_ticks(x0, x1, 6))
    o << "<text x='" << px(xv) << "' y='" << H - B + 18 << "' text-anchor='middle'>" << fmt(xv) << "</text>\n";
  if (clipped)
    o << "<text x='" << W - R + 12 << "' y='" << T + 20 * double(series.size()) + 24
      << "' font-size='10' fill='#666'>first steps above the</text><text x='" << W - R + 12 << "' y='"
      << T + 20 * double(series.size()) + 37 << "' font-size='10' fill='#666'>axis are clipped</text>\n";
  o << "<rect x='" << L << "' y='" << T << "' width='" << W - L - R << "' height='" << H - T - B
    << "' fill='none' stroke='#333'/>\n";
  o << "<text x='" << (L + W - R) / 2 << "' y='" << H - 12 << "' text-anchor='middle'>step</text>\n";
  o << "<text x='16' y='" << (T + H - B) / 2 << "' transform='rotate(-90 16 " << (T + H - B) / 2
    << ")' text-anchor='middle'>" << ylabel << "</text>\n";
  const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd"};
  for (size_t k = 0; k < series.size(); ++k) {
    const auto& [name, s] = series[k];
    o << "<polyline fill='none' stroke-width='" << (s.x.size() < 40 ? 2.5 : 1.2) << "' stroke='" << colors[k % 5] << "' points='";
    for (size_t i = 0; i < s.x.size(); ++i)
      if (std::isfinite(s.y[i])) o << px(s.x[i]) << "," << py(s.y[i]) << " ";
    o << "'/>\n";
    o << "<line x1='" << W - R + 12 << "' x2='" << W - R + 36 << "' y1='" << T + 14 + 20 * k << "' y2='" << T + 14 + 20 * k
      << "' stroke='" << colors[k % 5] << "' stroke-width='3'/>";
    o << "<text x='" << W - R + 42 << "' y='" << T + 18 + 20 * k << "'>" << name << "</text>\n";
  }
  o << "</svg>\n";
  return o.str();
}

}  // namespace

void write_training_plots(const std::string& dir) {
  std::istringstream in(read_file(dir + "/metrics.jsonl"));
  Series train, val;
  std::vector<double> load_steps;
  std::vector<std::vector<std::vector<double>>> load;  // [step][layer][expert] shares
  std::string line;
  while (std::getline(in, line)) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception&) {
      continue;  // a line cut by a crash
    }
    const double step = j.value("step", 0.0);
    train.x.push_back(step);
    train.y.push_back(j.value("nll", NAN));
    if (j.contains("val_loss")) val.x.push_back(step), val.y.push_back(j["val_loss"].get<double>());
    if (j.contains("expert_tokens")) {
      std::vector<std::vector<double>> shares;
      for (const auto& layer : j["expert_tokens"]) {
        std::vector<double> s;
        double sum = 0;
        for (const auto& c : layer) sum += c.get<double>();
        for (const auto& c : layer) s.push_back(sum > 0 ? c.get<double>() / sum : 0.0);
        shares.push_back(s);
      }
      load_steps.push_back(step);
      load.push_back(shares);
    }
  }
  atomic_write_file(dir + "/loss.svg",
                    line_chart({{"train", train}, {"validation", val}}, "Loss (nats per byte)", "loss"));
  if (load.empty() || load[0].empty()) return;
  // Heat map: one panel per layer; columns are bins of steps, rows experts.
  const size_t L = load[0].size(), E = load[0][0].size();
  const size_t bins = std::min<size_t>(load.size(), 120);
  const double cw = 5, ch = std::max(4.0, std::min(18.0, 180.0 / double(E))), gap = 34, left = 70, top = 72;
  const double panel_h = ch * double(E), W = std::max(640.0, left + cw * double(bins) + 150);
  const double H = top + double(L) * (panel_h + gap) + 20;
  const double mean = 1.0 / double(E);
  std::ostringstream o;
  o << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H
    << "' font-family='sans-serif' font-size='12'>\n<rect width='100%' height='100%' fill='white'/>\n";
  o << "<text x='" << W / 2 << "' y='22' text-anchor='middle' font-size='15'>Expert load over training "
    << "(share of routed slots against balanced " << fmt(100 * mean) << "%)</text>\n";
  o << load_legend(W - 230, 30, mean);
  for (size_t l = 0; l < L; ++l) {
    const double y0 = top + double(l) * (panel_h + gap) + 12;
    o << "<text x='" << left - 8 << "' y='" << y0 - 4 << "' text-anchor='end'>layer " << l << "</text>\n";
    for (size_t b = 0; b < bins; ++b) {
      const size_t s0 = b * load.size() / bins, s1 = std::max(s0 + 1, (b + 1) * load.size() / bins);
      for (size_t e = 0; e < E; ++e) {
        double share = 0;
        for (size_t s = s0; s < s1; ++s) share += load[s][l].size() > e ? load[s][l][e] : 0.0;
        share /= double(s1 - s0);
        o << "<rect x='" << left + cw * double(b) << "' y='" << y0 + ch * double(e) << "' width='" << cw + 0.5
          << "' height='" << ch + 0.5 << "' fill='" << load_color(share, mean) << "'/>";
      }
      o << "\n";
    }
    o << "<text x='" << left - 8 << "' y='" << y0 + ch * 0.8 << "' text-anchor='end' font-size='10'>e0</text>";
    o << "<text x='" << left - 8 << "' y='" << y0 + panel_h - 2 << "' text-anchor='end' font-size='10'>e" << E - 1 << "</text>\n";
    o << "<text x='" << left << "' y='" << y0 + panel_h + 14 << "' font-size='10'>step " << fmt(load_steps.front())
      << "</text><text x='" << left + cw * double(bins) << "' y='" << y0 + panel_h + 14
      << "' text-anchor='end' font-size='10'>step " << fmt(load_steps.back()) << "</text>\n";
  }
  o << "</svg>\n";
  atomic_write_file(dir + "/expert_load.svg", o.str());
}

void write_expert_usage_svg(const std::string& path, const std::vector<std::string>& inputs,
                            const std::vector<std::vector<std::vector<int64_t>>>& usage) {
  if (usage.empty() || usage[0].empty()) throw Error("[plots] no MoE layers to plot");
  const size_t L = usage[0].size(), E = usage[0][0].size(), N = inputs.size();
  const double cw = std::max(8.0, std::min(28.0, 560.0 / double(E))), ch = 20, left = 170, top = 76, gap = 40;
  const double W = std::max(640.0, left + cw * double(E) + 40), H = top + double(L) * (ch * double(N) + gap) + 10;
  const double mean = 1.0 / double(E);
  std::ostringstream o;
  o << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H
    << "' font-family='sans-serif' font-size='12'>\n<rect width='100%' height='100%' fill='white'/>\n";
  o << "<text x='" << W / 2 << "' y='22' text-anchor='middle' font-size='15'>Expert usage per input "
    << "(share of routed slots against uniform " << fmt(100 * mean) << "%)</text>\n";
  o << load_legend(W - 230, 30, mean);
  for (size_t l = 0; l < L; ++l) {
    const double y0 = top + double(l) * (ch * double(N) + gap) + 14;
    o << "<text x='" << left << "' y='" << y0 - 5 << "'>layer " << l << " (experts 0.." << E - 1 << ")</text>\n";
    for (size_t i = 0; i < N; ++i) {
      double sum = 0;
      for (auto c : usage[i][l]) sum += double(c);
      std::string name = inputs[i];
      if (name.size() > 26) name = "..." + name.substr(name.size() - 23);
      o << "<text x='" << left - 6 << "' y='" << y0 + ch * double(i) + 14 << "' text-anchor='end'>" << name << "</text>";
      for (size_t e = 0; e < E; ++e) {
        const double share = sum > 0 ? double(usage[i][l][e]) / sum : 0.0;
        o << "<rect x='" << left + cw * double(e) << "' y='" << y0 + ch * double(i) << "' width='" << cw - 1
          << "' height='" << ch - 1 << "' fill='" << load_color(share, mean) << "'><title>" << name
          << ", expert " << e << ": " << fmt(100 * share) << "%</title></rect>";
      }
      o << "\n";
    }
  }
  o << "</svg>\n";
  atomic_write_file(path, o.str());
}

}  // namespace moe
