#include <gtest/gtest.h>

#include <evosip/sip/header.hpp>
#include <evosip/sip/method.hpp>

namespace evosip::sip {
namespace {

TEST(HeaderId, EveryFullNameRoundTripsInAnyCase) {
  for (int i = 1; i < static_cast<int>(HeaderId::kCount); ++i) {
    const auto id = static_cast<HeaderId>(i);
    const std::string_view name = headerName(id);
    ASSERT_FALSE(name.empty());
    EXPECT_EQ(headerIdFromName(name), id) << name;
    std::string lower(name), upper(name);
    for (char& c : lower) {
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    for (char& c : upper) {
      c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    EXPECT_EQ(headerIdFromName(lower), id) << lower;
    EXPECT_EQ(headerIdFromName(upper), id) << upper;
  }
}

TEST(HeaderId, CompactForms) {
  EXPECT_EQ(headerIdFromName("v"), HeaderId::kVia);
  EXPECT_EQ(headerIdFromName("F"), HeaderId::kFrom);
  EXPECT_EQ(headerIdFromName("t"), HeaderId::kTo);
  EXPECT_EQ(headerIdFromName("i"), HeaderId::kCallId);
  EXPECT_EQ(headerIdFromName("m"), HeaderId::kContact);
  EXPECT_EQ(headerIdFromName("l"), HeaderId::kContentLength);
  EXPECT_EQ(headerIdFromName("c"), HeaderId::kContentType);
  EXPECT_EQ(headerIdFromName("e"), HeaderId::kContentEncoding);
  EXPECT_EQ(headerIdFromName("k"), HeaderId::kSupported);
  EXPECT_EQ(headerIdFromName("o"), HeaderId::kEvent);
  EXPECT_EQ(headerIdFromName("s"), HeaderId::kSubject);
  EXPECT_EQ(headerIdFromName("r"), HeaderId::kReferTo);
  EXPECT_EQ(headerIdFromName("b"), HeaderId::kReferredBy);
  EXPECT_EQ(headerIdFromName("x"), HeaderId::kSessionExpires);
  EXPECT_EQ(headerIdFromName("z"), HeaderId::kOther);
}

TEST(HeaderId, Unknown) {
  EXPECT_EQ(headerIdFromName(""), HeaderId::kOther);
  EXPECT_EQ(headerIdFromName("Vias"), HeaderId::kOther);
  EXPECT_EQ(headerIdFromName("X-Evosip-Foo"), HeaderId::kOther);
  EXPECT_EQ(headerIdFromName("Call_ID"), HeaderId::kOther);
  EXPECT_EQ(headerName(HeaderId::kOther), "");
  EXPECT_EQ(headerName(HeaderId::kCount), "");
}

TEST(MethodName, CaseSensitiveRoundTrip) {
  for (int i = 1; i <= static_cast<int>(Method::kPublish); ++i) {
    const auto m = static_cast<Method>(i);
    EXPECT_EQ(methodFromName(methodName(m)), m);
  }
  EXPECT_EQ(methodFromName("invite"), Method::kOther);
  EXPECT_EQ(methodFromName("NEWMETHOD"), Method::kOther);
  EXPECT_EQ(methodName(Method::kOther), "");
  EXPECT_TRUE(createsDialog(Method::kInvite));
  EXPECT_FALSE(createsDialog(Method::kBye));
}

}  // namespace
}  // namespace evosip::sip
