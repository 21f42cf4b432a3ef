#include "server/grpc/restricted_protocols.h"

#include <gtest/gtest.h>

namespace selu::grpc_transport {
namespace {

TEST(RestrictedProtocolsTest, MapsEveryRpcToTritonsGroup) {
  EXPECT_EQ(ProtocolGroupOf(Rpc::kServerLive), ProtocolGroup::kHealth);
  EXPECT_EQ(ProtocolGroupOf(Rpc::kServerReady), ProtocolGroup::kHealth);
  EXPECT_EQ(ProtocolGroupOf(Rpc::kModelReady), ProtocolGroup::kHealth);
  EXPECT_EQ(ProtocolGroupOf(Rpc::kServerMetadata), ProtocolGroup::kMetadata);
  EXPECT_EQ(ProtocolGroupOf(Rpc::kModelMetadata), ProtocolGroup::kMetadata);
  EXPECT_EQ(ProtocolGroupOf(Rpc::kModelInfer), ProtocolGroup::kInference);
  EXPECT_EQ(ProtocolGroupOf(Rpc::kModelStreamInfer), ProtocolGroup::kInference);
  EXPECT_EQ(ProtocolGroupOf(Rpc::kModelConfig), ProtocolGroup::kModelConfig);
  EXPECT_EQ(ProtocolGroupOf(Rpc::kModelStatistics), ProtocolGroup::kStatistics);
  EXPECT_EQ(ProtocolGroupOf(Rpc::kRepositoryIndex), ProtocolGroup::kModelRepository);
  EXPECT_EQ(ProtocolGroupOf(Rpc::kRepositoryModelLoad), ProtocolGroup::kModelRepository);
  EXPECT_EQ(ProtocolGroupOf(Rpc::kRepositoryModelUnload), ProtocolGroup::kModelRepository);
}

TEST(RestrictedProtocolsTest, ParsesGroupsHeaderAndValue) {
  auto parsed = RestrictedProtocols::Parse(
      {"model-repository, statistics:X-Admin-Token=a=b:c", "monitor:x-ops=1"});
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_TRUE(parsed->restricted(ProtocolGroup::kModelRepository));
  EXPECT_TRUE(parsed->restricted(ProtocolGroup::kStatistics));
  EXPECT_TRUE(parsed->restricted(ProtocolGroup::kMonitor));
  EXPECT_FALSE(parsed->restricted(ProtocolGroup::kInference));
  EXPECT_FALSE(parsed->restricted(ProtocolGroup::kHealth));
  EXPECT_EQ(parsed->header(ProtocolGroup::kModelRepository), "x-admin-token");
  const grpc::Status& denial = parsed->Denial(ProtocolGroup::kStatistics);
  EXPECT_EQ(denial.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(denial.error_message().find("statistics"), std::string::npos);
  EXPECT_NE(denial.error_message().find("x-admin-token"), std::string::npos);
  EXPECT_EQ(denial.error_message().find("a=b:c"), std::string::npos);
}

TEST(RestrictedProtocolsTest, ErrorsNameThePartAndHideTheValue) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"nope:h=secret", "unknown protocol group 'nope'"},
      {"health=secret", "no ':'"},
      {"health:h", "no '='"},
      {"health:=secret", "empty header"},
      {"health:h=", "empty value"},
      {",health:h=secret", "empty protocol group"},
      {"health:grpc-x=secret", "'grpc-x'"},
  };
  for (const auto& [spec, message] : cases) {
    auto parsed = RestrictedProtocols::Parse({spec});
    ASSERT_FALSE(parsed.ok()) << spec;
    EXPECT_EQ(parsed.status().code(), core::StatusCode::kInvalidArgument);
    EXPECT_NE(parsed.status().message().find(message), std::string::npos)
        << parsed.status().message();
    EXPECT_EQ(parsed.status().message().find("secret"), std::string::npos)
        << parsed.status().message();
  }
  EXPECT_FALSE(RestrictedProtocols::Parse({"health:a=1", "health:b=1"}).ok());
  EXPECT_FALSE(RestrictedProtocols::Parse({"health:a=1", "health:a=2"}).ok());
  EXPECT_TRUE(RestrictedProtocols::Parse({"health:a=1", "health,metadata:A=1"}).ok());
}

TEST(RestrictedProtocolsTest, ConstantTimeEqualsComparesExactly) {
  EXPECT_TRUE(ConstantTimeEquals("s3cret", "s3cret"));
  EXPECT_FALSE(ConstantTimeEquals("s3creT", "s3cret"));
  EXPECT_FALSE(ConstantTimeEquals("s3cre", "s3cret"));
  EXPECT_FALSE(ConstantTimeEquals("s3cret!", "s3cret"));
  EXPECT_FALSE(ConstantTimeEquals("", "s3cret"));
  EXPECT_FALSE(ConstantTimeEquals(std::string("s3cret\0", 7), "s3cret"));
}

}  // namespace
}  // namespace selu::grpc_transport
