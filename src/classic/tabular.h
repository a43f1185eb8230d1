#pragma once
// From a CSV table to the mixture's matrices, and back for new data: numeric columns standardised
// (mean and scale stored), categorical columns one-hot over the categories seen in training, the
// target a value (regression) or a one-hot class (classification). The encoding is part of a saved
// model, so predict-time data is encoded exactly as training data was.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "classic/expert.h"
#include "io/csv.h"

namespace moe::classic {

struct TabularEncoding {
  struct Feature {
    std::string column;
    bool numeric = true;
    double mean = 0, scale = 1;            // numeric: (x - mean) / scale
    std::vector<std::string> categories;  // categorical: one input per category, in this order
  };
  std::vector<Feature> features;
  std::string target;
  Task task = Task::regression;
  std::vector<std::string> classes;  // classification: the target's labels, sorted
  // Regression: the target is standardised too (experts with weight penalties and learned variances,
  // such as the MLP, fit badly on targets in the hundreds); predictions are mapped back.
  double target_mean = 0, target_scale = 1;

  // Learns the encoding from training data. task: classification when the target column is
  // categorical or when asked; regression needs a numeric target.
  static TabularEncoding fit(const CsvTable& table, const std::string& target, Task task);
  int64_t inputs() const;   // width of X
  int64_t outputs() const;  // 1, or the number of classes
  // X [rows, inputs()]. Every feature column must be present with its training type; a category
  // not seen in training encodes as all zeros. moe::Error names a missing or mistyped column.
  Mat encode_inputs(const CsvTable& table) const;
  // Y [rows, outputs()]: the standardised value, or one-hot classes; moe::Error names a class not
  // seen in training.
  Mat encode_targets(const CsvTable& table) const;
  // Predictions in the model's units [rows, outputs()] back in the table's (regression: the value).
  Mat decode_predictions(const Mat& P) const;
  bool has_target(const CsvTable& table) const;

  nlohmann::json to_json() const;
  static TabularEncoding from_json(const nlohmann::json& j);
};

}  // namespace moe::classic
