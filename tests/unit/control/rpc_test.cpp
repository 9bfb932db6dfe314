#include <stdexcept>
#include <string>

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <evosip/control/rpc.hpp>

namespace evosip::control {
namespace {

namespace json = boost::json;
using ::testing::ElementsAre;

class RpcRegistryTest : public ::testing::Test {
 protected:
  RpcRegistryTest() {
    rpc_.add("math.add", [](const json::value& params) -> RpcResult {
      const json::array* args = params.if_array();
      if (args == nullptr || args->size() != 2 || !(*args)[0].is_int64() ||
          !(*args)[1].is_int64()) {
        return invalidParams("expected [a, b] with two integers");
      }
      return json::value((*args)[0].get_int64() + (*args)[1].get_int64());
    });
    rpc_.add("echo", [](const json::value& params) -> RpcResult { return params; });
    rpc_.add("fail", [](const json::value&) -> RpcResult {
      return tl::unexpected(RpcError{-32000, "router set unknown", json::value{{"set", "x"}}});
    });
    rpc_.add("boom",
             [](const json::value&) -> RpcResult { throw std::runtime_error("disk on fire"); });
    rpc_.add("count", [this](const json::value&) -> RpcResult {
      ++calls_;
      return json::value(calls_);
    });
  }

  json::value call(std::string_view body) {
    std::string reply = rpc_.handle(body);
    EXPECT_FALSE(reply.empty()) << body;
    return json::parse(reply);
  }

  RpcRegistry rpc_;
  int calls_ = 0;
};

TEST_F(RpcRegistryTest, CallsAMethodWithPositionalParams) {
  EXPECT_EQ(call(R"({"jsonrpc":"2.0","method":"math.add","params":[2,3],"id":1})"),
            json::parse(R"({"jsonrpc":"2.0","result":5,"id":1})"));
}

TEST_F(RpcRegistryTest, PassesNamedParamsAndKeepsStringIds) {
  EXPECT_EQ(call(R"({"jsonrpc":"2.0","method":"echo","params":{"a":[1]},"id":"abc"})"),
            json::parse(R"({"jsonrpc":"2.0","result":{"a":[1]},"id":"abc"})"));
}

TEST_F(RpcRegistryTest, MissingParamsArriveAsNull) {
  EXPECT_EQ(call(R"({"jsonrpc":"2.0","method":"echo","id":null})"),
            json::parse(R"({"jsonrpc":"2.0","result":null,"id":null})"));
}

TEST_F(RpcRegistryTest, MalformedJsonIsAParseError) {
  json::value reply = call(R"({"jsonrpc":"2.0","method":"echo",)");
  EXPECT_EQ(reply.at("error").at("code"), -32700);
  EXPECT_TRUE(reply.at("id").is_null());
  EXPECT_EQ(call("").at("error").at("code"), -32700);
  EXPECT_EQ(call("\xff\xfe").at("error").at("code"), -32700);
}

TEST_F(RpcRegistryTest, DeeplyNestedJsonIsRejectedNotCrashing) {
  std::string deep(100000, '[');
  EXPECT_EQ(call(deep).at("error").at("code"), -32700);
}

TEST_F(RpcRegistryTest, WrongShapesAreInvalidRequests) {
  const char* bodies[] = {
      R"(1)",
      R"("x")",
      R"({"method":"echo","id":1})",                                 // no jsonrpc
      R"({"jsonrpc":"1.0","method":"echo","id":1})",                 // wrong version
      R"({"jsonrpc":"2.0","method":5,"id":1})",                      // method not a string
      R"({"jsonrpc":"2.0","method":"echo","params":"bar","id":1})",  // params a string
      R"({"jsonrpc":"2.0","method":"echo","id":{"x":1}})",           // id an object
  };
  for (const char* body : bodies) {
    json::value reply = call(body);
    EXPECT_EQ(reply.at("error").at("code"), -32600) << body;
    EXPECT_EQ(reply.at("jsonrpc"), "2.0") << body;
  }
  EXPECT_EQ(call(R"({"jsonrpc":"2.0","method":5,"id":7})").at("id"), 7);
  EXPECT_TRUE(call(R"({"jsonrpc":"2.0","method":"echo","id":[1]})").at("id").is_null());
}

TEST_F(RpcRegistryTest, UnknownMethodIsNamed) {
  json::value reply = call(R"({"jsonrpc":"2.0","method":"dispatcher.sett","id":4})");
  EXPECT_EQ(reply.at("error").at("code"), -32601);
  EXPECT_EQ(reply.at("error").at("message"), "Method not found: 'dispatcher.sett'");
  EXPECT_EQ(reply.at("error").at("data").at("method"), "dispatcher.sett");
  EXPECT_EQ(reply.at("id"), 4);
}

TEST_F(RpcRegistryTest, HandlerErrorsKeepTheirCodeMessageAndData) {
  json::value reply = call(R"({"jsonrpc":"2.0","method":"math.add","params":[1],"id":2})");
  EXPECT_EQ(reply.at("error").at("code"), -32602);
  EXPECT_EQ(reply.at("error").at("message"), "expected [a, b] with two integers");
  EXPECT_EQ(reply.at("error").as_object().count("data"), 0U);

  reply = call(R"({"jsonrpc":"2.0","method":"fail","id":3})");
  EXPECT_EQ(reply.at("error"),
            json::parse(R"({"code":-32000,"message":"router set unknown","data":{"set":"x"}})"));
}

TEST_F(RpcRegistryTest, HandlerExceptionIsAnInternalError) {
  json::value reply = call(R"({"jsonrpc":"2.0","method":"boom","id":9})");
  EXPECT_EQ(reply.at("error").at("code"), -32603);
  EXPECT_EQ(reply.at("error").at("message"), "Internal error: disk on fire");
  EXPECT_EQ(reply.at("id"), 9);
}

TEST_F(RpcRegistryTest, NotificationsRunButGetNoReply) {
  EXPECT_EQ(rpc_.handle(R"({"jsonrpc":"2.0","method":"count"})"), "");
  EXPECT_EQ(calls_, 1);
  EXPECT_EQ(rpc_.handle(R"({"jsonrpc":"2.0","method":"no.such.method"})"), "");
  EXPECT_EQ(rpc_.handle(R"({"jsonrpc":"2.0","method":"boom"})"), "");
}

TEST_F(RpcRegistryTest, BatchRepliesInOrderAndSkipsNotifications) {
  json::value reply = call(R"([
    {"jsonrpc":"2.0","method":"math.add","params":[1,2],"id":"a"},
    {"jsonrpc":"2.0","method":"count"},
    {"jsonrpc":"2.0","method":"missing","id":"b"},
    {"foo":"boo"},
    {"jsonrpc":"2.0","method":"echo","params":[true],"id":"c"}
  ])");
  ASSERT_TRUE(reply.is_array());
  const json::array& replies = reply.as_array();
  ASSERT_EQ(replies.size(), 4U);
  EXPECT_EQ(replies[0].at("result"), 3);
  EXPECT_EQ(replies[1].at("error").at("code"), -32601);
  EXPECT_EQ(replies[2].at("error").at("code"), -32600);
  EXPECT_EQ(replies[3].at("result"), json::parse("[true]"));
  EXPECT_EQ(calls_, 1);
}

TEST_F(RpcRegistryTest, BatchEdgeCases) {
  json::value empty = call("[]");
  EXPECT_EQ(empty.at("error").at("code"), -32600);

  json::value numbers = call("[1,2,3]");
  ASSERT_TRUE(numbers.is_array());
  EXPECT_EQ(numbers.as_array().size(), 3U);
  for (const auto& one : numbers.as_array()) {
    EXPECT_EQ(one.at("error").at("code"), -32600);
  }

  EXPECT_EQ(rpc_.handle(R"([{"jsonrpc":"2.0","method":"count"},
                           {"jsonrpc":"2.0","method":"count"}])"),
            "");
  EXPECT_EQ(calls_, 2);
}

TEST_F(RpcRegistryTest, RpcMethodsListsEveryMethodSorted) {
  EXPECT_THAT(rpc_.methods(),
              ElementsAre("boom", "count", "echo", "fail", "math.add", "rpc.methods"));
  EXPECT_EQ(call(R"({"jsonrpc":"2.0","method":"rpc.methods","id":1})").at("result"),
            json::parse(R"(["boom","count","echo","fail","math.add","rpc.methods"])"));
}

TEST_F(RpcRegistryTest, AddRejectsDuplicatesAndEmptyNames) {
  EXPECT_THROW(rpc_.add("echo", [](const json::value& p) -> RpcResult { return p; }),
               std::invalid_argument);
  EXPECT_THROW(rpc_.add("", [](const json::value& p) -> RpcResult { return p; }),
               std::invalid_argument);
  EXPECT_THROW(rpc_.add("rpc.methods", [](const json::value& p) -> RpcResult { return p; }),
               std::invalid_argument);
}

}  // namespace
}  // namespace evosip::control
