// moe predict: a model written by moe fit, applied to a CSV table; predictions to a CSV file, and
// metrics when the table holds the target column.
#include <cstdio>
#include <sstream>

#include "classic/metrics.h"
#include "classic/model_dir.h"
#include "classic/plots.h"
#include "commands.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "io/csv.h"
#include "vision_commands.h"

namespace moe::cli {

namespace {
struct PredictArgs {
  std::string model, data, out, gate_plot, confusion, labels, dataset;
  bool json = false;
};

// A CSV field, quoted when it needs to be.
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

int run_predict(const PredictArgs& a) {
  using namespace classic;
  if (is_vision_model(a.model)) {
    if (!a.gate_plot.empty()) throw Error("--gate-plot is for classic mixtures on two numeric inputs, not an image classifier");
    return run_predict_vision({a.model, a.dataset, a.data, a.labels, a.out, a.confusion, a.json});
  }
  if (!a.labels.empty() || !a.dataset.empty()) throw Error("--labels and --dataset are for image classifiers; " + a.model + " is a classic mixture");
  if (a.data.empty()) throw Error("--data TEST.csv is required");
  const ClassicModel model = load_classic_model(a.model);
  const TabularEncoding& enc = model.encoding;
  CsvOptions opts;
  for (const auto& f : enc.features)
    if (!f.numeric) opts.categorical.insert(f.column);  // e.g. a zip code seen as text in training
  // Columns named categorical must exist; a missing one is reported by encode_inputs with its name.
  CsvTable table = [&] {
    try {
      return read_csv(a.data, opts);
    } catch (const Error& e) {
      if (std::string(e.what()).find("to read as categories") == std::string::npos) throw;
      return read_csv(a.data);
    }
  }();
  const Mat X = enc.encode_inputs(table);
  const Mat P = enc.decode_predictions(model.mixture->predict(X));
  const bool classify = enc.task == Task::classification;
  std::ostringstream csv;
  csv << csv_field(enc.target + "_predicted");
  if (classify)
    for (const auto& c : enc.classes) csv << "," << csv_field("p_" + c);
  csv << "\n";
  for (int64_t i = 0; i < P.rows(); ++i) {
    if (classify) {
      Eigen::Index k;
      P.row(i).maxCoeff(&k);
      csv << csv_field(enc.classes[size_t(k)]);
      for (int64_t c = 0; c < P.cols(); ++c) csv << "," << nlohmann::json(P(i, c)).dump();
    } else {
      csv << nlohmann::json(P(i, 0)).dump();
    }
    csv << "\n";
  }
  nlohmann::json j = {{"rows", table.rows}};
  if (enc.has_target(table)) {
    const Mat Y = enc.decode_predictions(enc.encode_targets(table));
    if (classify) {
      j["accuracy"] = accuracy(P, Y);
    } else {
      j["mse"] = mean_squared_error(P, Y);
      j["r2"] = r_squared(P, Y);
    }
  }
  // Pictures are made before anything is written, so a model they do not fit writes nothing.
  std::string gate_svg, confusion_svg_text;
  if (!a.gate_plot.empty()) {
    PartitionPlot plot;
    plot.points.resize(table.rows, 2);
    for (int c = 0; c < 2 && enc.features.size() == 2; ++c)
      if (enc.features[size_t(c)].numeric)
        for (int64_t i = 0; i < table.rows; ++i) plot.points(i, c) = table.column(enc.features[size_t(c)].column).values[size_t(i)];
    gate_svg = gate_partition_svg(*model.mixture, enc, plot);
  }
  if (!a.confusion.empty()) {
    if (!classify) throw Error("--confusion: " + a.model + " is a regression model (a confusion matrix needs classes)");
    if (!enc.has_target(table)) throw Error("--confusion: " + a.data + " has no column '" + enc.target + "' to compare with");
    confusion_svg_text = confusion_svg(enc.classes, confusion_counts(P, enc.encode_targets(table)));
  }
  if (!gate_svg.empty()) atomic_write_file(a.gate_plot, gate_svg);
  if (!confusion_svg_text.empty()) atomic_write_file(a.confusion, confusion_svg_text);
  if (!a.out.empty()) atomic_write_file(a.out, csv.str());
  else if (!a.json) std::fputs(csv.str().c_str(), stdout);
  if (j.contains("accuracy")) std::fprintf(stderr, "%s: %lld rows, accuracy %.4f\n", a.data.c_str(), (long long)table.rows, j["accuracy"].get<double>());
  if (j.contains("mse"))
    std::fprintf(stderr, "%s: %lld rows, MSE %.6g, R^2 %.4f\n", a.data.c_str(), (long long)table.rows, j["mse"].get<double>(), j["r2"].get<double>());
  if (a.json) std::printf("%s\n", j.dump().c_str());
  return 0;
}
}  // namespace

Runner add_predict(CLI::App& app) {
  auto a = std::make_shared<PredictArgs>();
  CLI::App* c = app.add_subcommand("predict", "apply a model written by moe fit to a CSV table (or to images)");
  c->add_option("--model", a->model, "model directory (moe fit --out)")->required();
  c->add_option("--data", a->data, "CSV with the model's input columns (and the target, for metrics); IDX images for an image classifier");
  c->add_option("--labels", a->labels, "image classifiers: IDX labels for --data (for accuracy)");
  c->add_option("--dataset", a->dataset, "image classifiers: fashion-mnist (its test split)");
  c->add_option("--out", a->out, "write the predictions here (CSV) instead of standard output");
  c->add_option("--gate-plot", a->gate_plot, "SVG of how the gates divide the inputs (models with two numeric inputs)");
  c->add_option("--confusion", a->confusion, "SVG confusion matrix (classifiers; needs the target column)");
  c->add_flag("--json", a->json, "end with one JSON line: rows and accuracy, or mse and r2");
  return [a] { return run_predict(*a); };
}

}  // namespace moe::cli
