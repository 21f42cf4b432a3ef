#include "server/core/base/status.h"

#include <gtest/gtest.h>

#include <memory>

namespace selu::core {
namespace {

TEST(StatusTest, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.ToString(), "OK");
}

TEST(StatusTest, CarriesCodeAndMessage) {
  Status s = InvalidArgumentError("input 'x' has 3 features, expected 4");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.ToString(), "INVALID_ARGUMENT: input 'x' has 3 features, expected 4");
  EXPECT_EQ(s.WithPrefix("model 'digits'").message(),
            "model 'digits': input 'x' has 3 features, expected 4");
}

TEST(StatusTest, CodeNamesMatchGrpc) {
  EXPECT_EQ(StatusCodeName(StatusCode::kResourceExhausted), "RESOURCE_EXHAUSTED");
  EXPECT_EQ(StatusCodeName(StatusCode::kFailedPrecondition), "FAILED_PRECONDITION");
  EXPECT_EQ(StatusCodeName(StatusCode::kUnauthenticated), "UNAUTHENTICATED");
  EXPECT_EQ(static_cast<int>(StatusCode::kUnavailable), 14);
}

StatusOr<std::unique_ptr<int>> MakeInt(bool fail) {
  if (fail) return NotFoundError("no int");
  return std::make_unique<int>(7);
}

Status Chain(bool fail) {
  SELU_RETURN_IF_ERROR(MakeInt(fail).status());
  return OkStatus();
}

TEST(StatusOrTest, HoldsValueOrStatus) {
  auto good = MakeInt(false);
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(**good, 7);
  std::unique_ptr<int> moved = std::move(good).value();
  EXPECT_EQ(*moved, 7);

  auto bad = MakeInt(true);
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(Chain(true).code(), StatusCode::kNotFound);
  EXPECT_TRUE(Chain(false).ok());
}

}  // namespace
}  // namespace selu::core
