#include "classic/tabular.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "core/error.h"

namespace moe::classic {
namespace {
std::string label_of(const CsvColumn& c, int64_t i) {
  if (!c.numeric) return c.labels[size_t(i)];
  std::string s = nlohmann::json(c.values[size_t(i)]).dump();  // 1.0 -> "1.0": same as the label's json
  return s;
}
}  // namespace

TabularEncoding TabularEncoding::fit(const CsvTable& table, const std::string& target, Task task) {
  TabularEncoding e;
  e.target = target;
  e.task = task;
  const CsvColumn& y = table.column(target);
  if (task == Task::regression && !y.numeric)
    throw Error("[classic] target column '" + target + "' holds text: use --task classification");
  if (task == Task::classification) {
    std::set<std::string> labels;
    for (int64_t i = 0; i < table.rows; ++i) labels.insert(label_of(y, i));
    if (labels.size() < 2) throw Error("[classic] target column '" + target + "' has a single class");
    e.classes.assign(labels.begin(), labels.end());
  } else {
    double sum = 0, sq = 0;
    for (double v : y.values) sum += v;
    e.target_mean = table.rows ? sum / double(table.rows) : 0.0;
    for (double v : y.values) sq += (v - e.target_mean) * (v - e.target_mean);
    const double var = table.rows ? sq / double(table.rows) : 0.0;
    e.target_scale = var > 0 ? std::sqrt(var) : 1.0;
  }
  for (const auto& c : table.columns) {
    if (c.name == target) continue;
    Feature f;
    f.column = c.name;
    f.numeric = c.numeric;
    if (c.numeric) {
      double m = 0;
      for (double v : c.values) m += v;
      m /= double(c.values.size());
      double var = 0;
      for (double v : c.values) var += (v - m) * (v - m);
      var /= double(c.values.size());
      f.mean = m;
      f.scale = var > 0 ? std::sqrt(var) : 1.0;  // a constant column stays 0 after centring
    } else {
      std::set<std::string> cats(c.labels.begin(), c.labels.end());
      f.categories.assign(cats.begin(), cats.end());
    }
    e.features.push_back(std::move(f));
  }
  if (e.features.empty()) throw Error("[classic] no input columns besides the target '" + target + "'");
  return e;
}

int64_t TabularEncoding::inputs() const {
  int64_t n = 0;
  for (const auto& f : features) n += f.numeric ? 1 : int64_t(f.categories.size());
  return n;
}

int64_t TabularEncoding::outputs() const { return task == Task::classification ? int64_t(classes.size()) : 1; }

bool TabularEncoding::has_target(const CsvTable& table) const {
  return std::any_of(table.columns.begin(), table.columns.end(), [&](const CsvColumn& c) { return c.name == target; });
}

Mat TabularEncoding::encode_inputs(const CsvTable& table) const {
  Mat X = Mat::Zero(table.rows, inputs());
  int64_t at = 0;
  for (const auto& f : features) {
    const CsvColumn& c = table.column(f.column);
    if (c.numeric != f.numeric)
      throw Error("[classic] column '" + f.column + "' was " + (f.numeric ? "numeric" : "categorical") +
                  " in training and is " + (c.numeric ? "numeric" : "categorical") + " here");
    if (f.numeric) {
      for (int64_t i = 0; i < table.rows; ++i) X(i, at) = (c.values[size_t(i)] - f.mean) / f.scale;
      ++at;
    } else {
      for (int64_t i = 0; i < table.rows; ++i) {
        auto it = std::lower_bound(f.categories.begin(), f.categories.end(), c.labels[size_t(i)]);
        if (it != f.categories.end() && *it == c.labels[size_t(i)]) X(i, at + (it - f.categories.begin())) = 1.0;
      }
      at += int64_t(f.categories.size());
    }
  }
  return X;
}

Mat TabularEncoding::encode_targets(const CsvTable& table) const {
  const CsvColumn& y = table.column(target);
  if (task == Task::regression) {
    if (!y.numeric) throw Error("[classic] target column '" + target + "' holds text, where training had numbers");
    Mat Y(table.rows, 1);
    for (int64_t i = 0; i < table.rows; ++i) Y(i, 0) = (y.values[size_t(i)] - target_mean) / target_scale;
    return Y;
  }
  Mat Y = Mat::Zero(table.rows, outputs());
  for (int64_t i = 0; i < table.rows; ++i) {
    const std::string l = label_of(y, i);
    auto it = std::lower_bound(classes.begin(), classes.end(), l);
    if (it == classes.end() || *it != l) throw Error("[classic] row " + std::to_string(i + 1) + ": class '" + l + "' of '" + target + "' was not seen in training");
    Y(i, it - classes.begin()) = 1.0;
  }
  return Y;
}

nlohmann::json TabularEncoding::to_json() const {
  nlohmann::json fs = nlohmann::json::array();
  for (const auto& f : features) {
    nlohmann::json j = {{"column", f.column}, {"numeric", f.numeric}};
    if (f.numeric) j["mean"] = f.mean, j["scale"] = f.scale;
    else j["categories"] = f.categories;
    fs.push_back(j);
  }
  nlohmann::json j = {{"target", target}, {"task", task == Task::regression ? "regression" : "classification"}, {"features", fs}};
  if (task == Task::classification) j["classes"] = classes;
  else j["target_mean"] = target_mean, j["target_scale"] = target_scale;
  return j;
}

Mat TabularEncoding::decode_predictions(const Mat& P) const {
  if (task == Task::classification) return P;
  return (P.array() * target_scale + target_mean).matrix();
}

TabularEncoding TabularEncoding::from_json(const nlohmann::json& j) {
  try {
    TabularEncoding e;
    e.target = j.at("target").get<std::string>();
    const std::string task = j.at("task").get<std::string>();
    if (task != "regression" && task != "classification") throw Error("[classic] encoding: unknown task '" + task + "'");
    e.task = task == "regression" ? Task::regression : Task::classification;
    if (e.task == Task::classification) e.classes = j.at("classes").get<std::vector<std::string>>();
    // Models written before targets were standardised have neither key.
    e.target_mean = j.value("target_mean", 0.0);
    e.target_scale = j.value("target_scale", 1.0);
    if (!std::isfinite(e.target_mean) || !(e.target_scale > 0) || !std::isfinite(e.target_scale))
      throw Error("[classic] encoding: the target has a bad mean or scale");
    for (const auto& fj : j.at("features")) {
      Feature f;
      f.column = fj.at("column").get<std::string>();
      f.numeric = fj.at("numeric").get<bool>();
      if (f.numeric) {
        f.mean = fj.at("mean").get<double>();
        f.scale = fj.at("scale").get<double>();
        if (!std::isfinite(f.mean) || !(f.scale > 0) || !std::isfinite(f.scale))
          throw Error("[classic] encoding: column '" + f.column + "' has a bad mean or scale");
      } else {
        f.categories = fj.at("categories").get<std::vector<std::string>>();
        if (!std::is_sorted(f.categories.begin(), f.categories.end()))
          throw Error("[classic] encoding: the categories of '" + f.column + "' are not sorted");
      }
      e.features.push_back(std::move(f));
    }
    if (!std::is_sorted(e.classes.begin(), e.classes.end())) throw Error("[classic] encoding: classes are not sorted");
    return e;
  } catch (const nlohmann::json::exception& ex) {
    throw Error(std::string("[classic] encoding: ") + ex.what());
  }
}

}  // namespace moe::classic
