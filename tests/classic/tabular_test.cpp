// CSV tables to matrices: standardised numbers, one-hot categories, the target, the JSON that a
// saved model keeps, and clear errors for data that does not match the training data.
#include "classic/tabular.h"

#include <cmath>

#include <gtest/gtest.h>

#include "../test_util.h"
#include "core/error.h"

namespace moe::classic {
namespace {

const char* kTrain =
    "size,colour,price,kind\n"
    "1,red,10,a\n"
    "2,blue,20,b\n"
    "3,red,30,a\n"
    "6,green,40,c\n";

TEST(Tabular, StandardisesNumbersAndOneHotsCategories) {
  const CsvTable t = parse_csv(kTrain, "train.csv");
  const auto e = TabularEncoding::fit(t, "price", Task::regression);
  ASSERT_EQ(e.inputs(), 1 + 3 + 3);  // size; colour blue/green/red; kind a/b/c
  const Mat X = e.encode_inputs(t);
  EXPECT_NEAR(X.col(0).mean(), 0.0, 1e-12);
  EXPECT_NEAR(X.col(0).squaredNorm() / 4, 1.0, 1e-12);
  EXPECT_EQ(X.row(0).segment(1, 3), Eigen::RowVector3d(0, 0, 1));  // red
  EXPECT_EQ(X.row(3).segment(1, 3), Eigen::RowVector3d(0, 1, 0));  // green
  EXPECT_EQ(X.row(1).segment(4, 3), Eigen::RowVector3d(0, 1, 0));  // kind b
  // The target standardised too (mean 25, population sd sqrt(125)), and mapped back exactly.
  const Mat Y = e.encode_targets(t);
  EXPECT_LT((Y.col(0) - (Eigen::Vector4d(10, 20, 30, 40).array() - 25).matrix() / std::sqrt(125.0)).cwiseAbs().maxCoeff(), 1e-12);
  EXPECT_LT((e.decode_predictions(Y).col(0) - Eigen::Vector4d(10, 20, 30, 40)).cwiseAbs().maxCoeff(), 1e-12);
  const TabularEncoding back = TabularEncoding::from_json(e.to_json());
  EXPECT_EQ(back.target_mean, e.target_mean);
  EXPECT_EQ(back.target_scale, e.target_scale);
  // New data: an unseen category is all zeros; the JSON round trip encodes the same.
  const CsvTable n = parse_csv("kind,colour,size\nz,red,3\n", "new.csv");
  const auto e2 = TabularEncoding::from_json(nlohmann::json::parse(e.to_json().dump()));
  const Mat Xn = e2.encode_inputs(n);
  EXPECT_NEAR(Xn(0, 0), X(2, 0), 1e-15);
  EXPECT_EQ(Xn.row(0).segment(4, 3), Eigen::RowVector3d(0, 0, 0));
  EXPECT_FALSE(e2.has_target(n));
}

TEST(Tabular, ClassesOfACategoricalOrNumericTarget) {
  const CsvTable t = parse_csv(kTrain, "train.csv");
  const auto e = TabularEncoding::fit(t, "kind", Task::classification);
  EXPECT_EQ(e.classes, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(e.encode_targets(t).row(3), Eigen::RowVector3d(0, 0, 1));
  const auto en = TabularEncoding::fit(t, "size", Task::classification);
  EXPECT_EQ(en.outputs(), 4);
  EXPECT_NE(test::error_of([&] { e.encode_targets(parse_csv("size,colour,price,kind\n1,red,1,d\n", "x.csv")); })
                .find("row 1: class 'd' of 'kind' was not seen in training"),
            std::string::npos);
}

TEST(Tabular, MismatchedDataIsAClearError) {
  const CsvTable t = parse_csv(kTrain, "train.csv");
  const auto e = TabularEncoding::fit(t, "price", Task::regression);
  EXPECT_NE(test::error_of([&] { TabularEncoding::fit(t, "kind", Task::regression); }).find("use --task classification"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { TabularEncoding::fit(t, "nope", Task::regression); }).find("no column 'nope'"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { e.encode_inputs(parse_csv("size,colour\n1,red\n", "p.csv")); }).find("no column 'kind'"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { e.encode_inputs(parse_csv("size,colour,kind\nbig,red,a\n", "p.csv")); })
                .find("column 'size' was numeric in training and is categorical here"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { TabularEncoding::fit(parse_csv("y\n1\n2\n", "o.csv"), "y", Task::regression); })
                .find("no input columns"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { TabularEncoding::fit(parse_csv("x,y\n1,a\n2,a\n", "o.csv"), "y", Task::classification); })
                .find("a single class"),
            std::string::npos);
  auto j = e.to_json();
  j["features"][0]["scale"] = 0.0;
  EXPECT_NE(test::error_of([&] { TabularEncoding::from_json(j); }).find("bad mean or scale"), std::string::npos);
  j = e.to_json();
  j["task"] = 3;
  EXPECT_NE(test::error_of([&] { TabularEncoding::from_json(j); }).find("[classic] encoding:"), std::string::npos);
}

}  // namespace
}  // namespace moe::classic
