// A fitted classic mixture saved as a directory and read back predicts the same (parameters are
// stored as F32), and a damaged directory is a clear error.
#include "classic/model_dir.h"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "../test_util.h"
#include "core/error.h"

namespace moe::classic {
namespace {

TEST(ClassicModelDir, RoundTripPredictsTheSame) {
  const CsvTable t = parse_csv(
      "a,colour,y\n0.1,red,1\n0.5,blue,2\n0.9,red,3.5\n1.3,green,3\n1.7,blue,5\n2.1,red,4.2\n2.5,green,6\n2.9,blue,7.1\n",
      "t.csv");
  ClassicModel m;
  m.encoding = TabularEncoding::fit(t, "y", Task::regression);
  m.mixture = std::make_unique<Mixture>(m.encoding.inputs(), 1,
                                        MixtureConfig{Task::regression, {"linear", "linear"}, {{"l2", 1e-2}}, 1e-2, 1});
  const Mat X = m.encoding.encode_inputs(t);
  m.mixture->fit_em(X, m.encoding.encode_targets(t), {30, 1e-9, 2});
  const std::string dir = test::fresh_dir("classic_model");
  save_classic_model(dir, m);
  const ClassicModel r = load_classic_model(dir);
  EXPECT_EQ(r.encoding.to_json(), m.encoding.to_json());
  const Mat a = m.mixture->predict(X), b = r.mixture->predict(r.encoding.encode_inputs(t));
  EXPECT_LT((a - b).cwiseAbs().maxCoeff(), 1e-5 * (1 + a.cwiseAbs().maxCoeff()));

  // Weights of another fit beside this config (a save interrupted between its two writes).
  const std::string other = test::fresh_dir("classic_model_other");
  save_classic_model(other, m);
  const auto over = std::filesystem::copy_options::overwrite_existing;
  std::filesystem::copy_file(dir + "/model.safetensors", other + "/mine.safetensors");
  std::filesystem::copy_file(other + "/model.safetensors", dir + "/model.safetensors", over);
  EXPECT_NE(test::error_of([&] { load_classic_model(dir); }).find("come from different fits"), std::string::npos);
  std::filesystem::copy_file(other + "/mine.safetensors", dir + "/model.safetensors", over);
  EXPECT_NO_THROW(load_classic_model(dir));
  std::filesystem::remove_all(other);

  // Damage: another model type, a missing tensor, a shape that does not match the config.
  auto cfg = nlohmann::json::parse(std::ifstream(dir + "/config.json"));
  auto write = [&](const nlohmann::json& j) { std::ofstream(dir + "/config.json") << j.dump(); };
  auto bad = cfg;
  bad["model_type"] = "mixtral";
  write(bad);
  EXPECT_NE(test::error_of([&] { load_classic_model(dir); }).find("not a classic mixture"), std::string::npos);
  bad = cfg;
  bad["experts"] = {"linear", "linear", "linear"};
  write(bad);
  EXPECT_NE(test::error_of([&] { load_classic_model(dir); }).find("parameter 'coef' is "), std::string::npos);
  bad = cfg;
  bad["encoding"]["features"].erase(0);
  bad["inputs"] = int64_t(cfg["inputs"]) - 1;
  write(bad);
  EXPECT_NE(test::error_of([&] { load_classic_model(dir); }).find("expected"), std::string::npos);
  bad = cfg;
  bad.erase("gate_l2");
  write(bad);
  EXPECT_NE(test::error_of([&] { load_classic_model(dir); }).find("config.json:"), std::string::npos);
  EXPECT_NE(test::error_of([&] { load_classic_model(dir + "/nowhere"); }).find("cannot open"), std::string::npos);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace moe::classic
