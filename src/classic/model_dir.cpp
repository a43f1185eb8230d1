#include "classic/model_dir.h"

#include <filesystem>
#include <random>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"

namespace moe::classic {

void save_classic_model(const std::string& dir, const ClassicModel& model) {
  const Mixture& m = *model.mixture;
  std::filesystem::create_directories(dir);
  const auto params = m.parameters();
  std::vector<Tensor> tensors;
  tensors.reserve(params.size());
  NamedTensors named;
  for (const auto& [name, mat] : params) {
    Tensor t({mat.rows(), mat.cols()});
    for (int64_t i = 0; i < mat.rows(); ++i)
      for (int64_t j = 0; j < mat.cols(); ++j) t.data()[i * mat.cols() + j] = float(mat(i, j));
    tensors.push_back(std::move(t));
  }
  size_t k = 0;
  for (const auto& [name, mat] : params) named.emplace_back(name, &tensors[k++]);
  // One id in both files: a crash between the two writes cannot pair one fit's weights with
  // another's config unnoticed.
  std::random_device rd;
  const std::string fit_id = std::to_string(rd()) + "-" + std::to_string(rd());
  write_safetensors(dir + "/model.safetensors", named, {{"format", "moe-classic-mixture"}, {"fit_id", fit_id}});
  const MixtureConfig& c = m.config();
  nlohmann::json j = {{"model_type", "classic_mixture"},
                      {"task", c.task == Task::regression ? "regression" : "classification"},
                      {"experts", c.kinds},
                      {"expert_options", c.expert_options.is_null() ? nlohmann::json::object() : c.expert_options},
                      {"gate", c.gate_kind},
                      {"gate_options", c.gate_options},
                      {"gate_l2", c.gate_l2},
                      {"depth", c.depth},
                      {"inputs", m.inputs()},
                      {"outputs", m.outputs()},
                      {"encoding", model.encoding.to_json()},
                      {"fit_id", fit_id}};
  atomic_write_file(dir + "/config.json", j.dump(2) + "\n");
}

ClassicModel load_classic_model(const std::string& dir) {
  const std::string cfg_path = dir + "/config.json";
  std::ifstream f(cfg_path);
  if (!f) throw Error("[classic] " + cfg_path + ": cannot open (is " + dir + " a model written by moe fit?)");
  std::stringstream ss;
  ss << f.rdbuf();
  ClassicModel out;
  MixtureConfig c;
  int64_t inputs = 0, outputs = 0;
  std::string fit_id;
  try {
    const auto j = nlohmann::json::parse(ss.str());
    if (j.value("model_type", std::string()) != "classic_mixture")
      throw Error("[classic] " + cfg_path + ": not a classic mixture (model_type '" + j.value("model_type", std::string()) + "')");
    const std::string task = j.at("task").get<std::string>();
    if (task != "regression" && task != "classification") throw Error("[classic] " + cfg_path + ": unknown task '" + task + "'");
    c.task = task == "regression" ? Task::regression : Task::classification;
    c.kinds = j.at("experts").get<std::vector<std::string>>();
    c.expert_options = j.at("expert_options");
    c.gate_l2 = j.at("gate_l2").get<double>();
    // "linear" is how the first models (one level, softmax gate) named their gate.
    c.gate_kind = j.value("gate", std::string("logistic"));
    if (c.gate_kind == "linear") c.gate_kind = "logistic";
    c.gate_options = j.value("gate_options", nlohmann::json::object());
    // Whole numbers checked before conversion (an out-of-range double to int is undefined).
    auto whole = [&](const nlohmann::json& v, const char* key, int64_t lo, int64_t hi) {
      if (!v.is_number_integer() || v.get<int64_t>() < lo || v.get<int64_t>() > hi)
        throw Error("[classic] " + cfg_path + ": '" + key + "' must be a whole number in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
      return v.get<int64_t>();
    };
    c.depth = int(whole(j.value("depth", nlohmann::json(1)), "depth", 1, 16));
    inputs = whole(j.at("inputs"), "inputs", 1, int64_t(1) << 24);
    outputs = whole(j.at("outputs"), "outputs", 1, int64_t(1) << 24);
    out.encoding = TabularEncoding::from_json(j.at("encoding"));
    fit_id = j.at("fit_id").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    throw Error("[classic] " + cfg_path + ": " + e.what());
  }
  if (inputs != out.encoding.inputs() || outputs != out.encoding.outputs() || out.encoding.task != c.task)
    throw Error("[classic] " + cfg_path + ": the encoding does not match the model's sizes or task");
  try {
    out.mixture = std::make_unique<Mixture>(inputs, outputs, c);
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " (in " + cfg_path + ")");
  }
  const auto file = SafetensorsFile::open(dir + "/model.safetensors");
  const auto id = file.metadata().find("fit_id");
  if (id == file.metadata().end() || id->second != fit_id)
    throw Error("[classic] " + dir + ": model.safetensors and config.json come from different fits (an interrupted save?)");
  std::map<std::string, Mat> params;
  for (const auto& info : file.tensors()) {
    if (info.shape.size() != 2) throw Error("[classic] " + file.path() + ": tensor '" + info.name + "' is not a matrix");
    const Tensor t = file.read(info.name);
    Mat m(info.shape[0], info.shape[1]);
    for (int64_t i = 0; i < m.rows(); ++i)
      for (int64_t jx = 0; jx < m.cols(); ++jx) m(i, jx) = t.data()[i * m.cols() + jx];
    params[info.name] = m;
  }
  try {
    out.mixture->set_parameters(params);
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " (in " + file.path() + ")");
  }
  return out;
}

}  // namespace moe::classic
