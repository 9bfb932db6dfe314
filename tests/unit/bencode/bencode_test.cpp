#include <cstdint>
#include <limits>
#include <string>

#include <gtest/gtest.h>

#include <evosip/bencode/bencode.hpp>

namespace evosip::bencode {
namespace {

// The error message of a decode that must fail.
std::string decodeError(std::string_view text, const Limits& limits = {}) {
  auto v = decode(text, limits);
  EXPECT_FALSE(v) << "accepted: " << text;
  return v ? std::string() : v.error().message;
}

TEST(Bencode, Integers) {
  EXPECT_EQ(decode("i0e")->asInteger(), 0);
  EXPECT_EQ(decode("i42e")->asInteger(), 42);
  EXPECT_EQ(decode("i-17e")->asInteger(), -17);
  EXPECT_EQ(decode("i9223372036854775807e")->asInteger(), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(decode("i-9223372036854775808e")->asInteger(), std::numeric_limits<int64_t>::min());
  EXPECT_TRUE(decode("i7e")->isInteger());
}

TEST(Bencode, MalformedIntegersNameTheProblemAndOffset) {
  EXPECT_EQ(decodeError("i-0e"), "bencode: negative zero integer at offset 2");
  EXPECT_EQ(decodeError("i03e"), "bencode: leading zero in integer at offset 1");
  EXPECT_EQ(decodeError("i9223372036854775808e"),
            "bencode: integer out of 64-bit range at offset 19");
  EXPECT_NE(decodeError("i-9223372036854775809e").find("out of 64-bit range"), std::string::npos);
  EXPECT_NE(decodeError("ie").find("integer without digits"), std::string::npos);
  EXPECT_NE(decodeError("i-e").find("integer without digits"), std::string::npos);
  EXPECT_NE(decodeError("i 1e").find("integer without digits"), std::string::npos);
  EXPECT_NE(decodeError("i12").find("unterminated integer"), std::string::npos);
  EXPECT_NE(decodeError("i").find("unterminated integer"), std::string::npos);
  EXPECT_NE(decodeError("i1x").find("expected 'e'"), std::string::npos);
  EXPECT_NE(decodeError("i+1e").find("without digits"), std::string::npos);
}

TEST(Bencode, Strings) {
  EXPECT_EQ(decode("0:")->asString(), "");
  EXPECT_EQ(decode("4:spam")->asString(), "spam");
  auto bin =
      decode(std::string_view("3:\0\xff"
                              "e",
                              5));
  ASSERT_TRUE(bin);
  EXPECT_EQ(bin->asString(), std::string_view("\0\xff"
                                              "e",
                                              3));
  EXPECT_EQ(decodeError("5:spam"), "bencode: string length 5 exceeds the input at offset 0");
  EXPECT_EQ(decodeError("03:abc"), "bencode: leading zero in string length at offset 0");
  EXPECT_NE(decodeError("4spam").find("expected ':'"), std::string::npos);
  EXPECT_NE(decodeError("99999999999999999999999:x").find("exceeds the input"), std::string::npos);
  EXPECT_NE(decodeError("4").find("exceeds the input"), std::string::npos);
  EXPECT_NE(decodeError("1").find("expected ':'"), std::string::npos);
}

TEST(Bencode, ListsAndDicts) {
  auto l = decode("l4:spami42ee");
  ASSERT_TRUE(l);
  ASSERT_TRUE(l->isList());
  ASSERT_EQ(l->asList().size(), 2u);
  EXPECT_EQ(l->asList()[0].asString(), "spam");
  EXPECT_EQ(l->asList()[1].asInteger(), 42);

  // Wire order is kept even when not sorted.
  auto d = decode("d4:spaml1:a1:be3:cow3:mooe");
  ASSERT_TRUE(d);
  ASSERT_TRUE(d->isDict());
  ASSERT_EQ(d->asDict().size(), 2u);
  EXPECT_EQ(d->asDict()[0].key, "spam");
  EXPECT_EQ(d->asDict()[1].key, "cow");
  EXPECT_EQ(d->string("cow"), "moo");
  EXPECT_EQ(d->string("spam"), std::nullopt);  // a list, not a string
  EXPECT_EQ(d->integer("cow"), std::nullopt);
  EXPECT_EQ(d->find("nope"), nullptr);
  EXPECT_TRUE(d->has("spam"));
  EXPECT_TRUE(decode("le")->asList().empty());
  EXPECT_TRUE(decode("de")->asDict().empty());
}

TEST(Bencode, DuplicateKeysFirstWins) {
  auto d = decode("d1:ai1e1:ai2ee");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->integer("a"), 1);
}

TEST(Bencode, MalformedStructure) {
  EXPECT_NE(decodeError("l4:spam").find("unterminated list"), std::string::npos);
  EXPECT_NE(decodeError("d3:cow").find("dictionary key without a value"), std::string::npos);
  EXPECT_NE(decodeError("d3:cowe").find("dictionary key without a value"), std::string::npos);
  EXPECT_NE(decodeError("d3:cow3:moo").find("unterminated dictionary"), std::string::npos);
  EXPECT_EQ(decodeError("di1e3:mooe"), "bencode: dictionary key is not a byte string at offset 1");
  EXPECT_EQ(decodeError("i1ei2e"), "bencode: trailing bytes after the value at offset 3");
  EXPECT_EQ(decodeError("x"), "bencode: unexpected byte 'x' at offset 0");
  EXPECT_EQ(decodeError(std::string_view("\0", 1)), "bencode: unexpected byte '\\x00' at offset 0");
  EXPECT_NE(decodeError("").find("unexpected end of input"), std::string::npos);
  EXPECT_NE(decodeError("e").find("unexpected byte 'e'"), std::string::npos);
}

TEST(Bencode, DepthAndElementLimits) {
  std::string deep32 = std::string(32, 'l') + std::string(32, 'e');
  EXPECT_TRUE(decode(deep32));
  std::string deep33 = std::string(33, 'l') + std::string(33, 'e');
  auto err = decode(deep33);
  ASSERT_FALSE(err);
  EXPECT_EQ(err.error().code, Errc::kTooLarge);
  EXPECT_EQ(err.error().message, "bencode: nesting deeper than 32 levels at offset 32");
  // Far deeper input fails the same way instead of exhausting the stack.
  EXPECT_FALSE(decode(std::string(100000, 'l')));

  Limits small;
  small.maxElements = 3;
  EXPECT_TRUE(decode("li1ei2ee", small));
  auto many = decode("li1ei2ei3ee", small);
  ASSERT_FALSE(many);
  EXPECT_EQ(many.error().code, Errc::kTooLarge);
  small.maxInputSize = 4;
  EXPECT_EQ(decode("i12345e", small).error().code, Errc::kTooLarge);
}

TEST(Bencode, EncodeSortsKeysAndRoundTrips) {
  Value v = Value::makeDict();
  v.set("zeta", 1).set("alpha", "x").set("list", Value::makeList().add(-5).add("ab"));
  EXPECT_EQ(encode(v), "d5:alpha1:x4:listli-5e2:abe4:zetai1ee");
  auto back = decode(encode(v));
  ASSERT_TRUE(back);
  // Decoding keeps wire order, which is now the sorted order.
  EXPECT_EQ(back->asDict()[0].key, "alpha");
  EXPECT_EQ(*back, Value::makeDict()
                       .set("alpha", "x")
                       .set("list", Value::makeList().add(-5).add("ab"))
                       .set("zeta", 1));
  EXPECT_EQ(encode(*back), encode(v));

  // Raw byte order: "\x80" sorts after "z" (unsigned comparison).
  Value b = Value::makeDict();
  b.set("\x80", 1).set("z", 2).set("A", 3);
  EXPECT_EQ(encode(b), "d1:Ai3e1:zi2e1:\x80i1ee");

  std::string appended = "prefix ";
  encodeTo(Value(std::string("hi")), appended);
  EXPECT_EQ(appended, "prefix 2:hi");
  EXPECT_EQ(encode(Value(std::numeric_limits<int64_t>::min())), "i-9223372036854775808e");
  EXPECT_EQ(encode(Value(uint16_t{30000})), "i30000e");
  EXPECT_EQ(encode(Value(std::string_view("\0", 1))), std::string("1:\0", 3));
}

TEST(Bencode, SetReplacesAndConverts) {
  Value v;  // integer 0
  v.set("a", 1);
  EXPECT_TRUE(v.isDict());
  v.set("a", "two");
  ASSERT_EQ(v.asDict().size(), 1u);
  EXPECT_EQ(v.string("a"), "two");
  Value s("text");
  EXPECT_EQ(s.asInteger(), 0);
  EXPECT_TRUE(s.asList().empty());
  EXPECT_TRUE(s.asDict().empty());
  EXPECT_EQ(s.find("a"), nullptr);
  EXPECT_TRUE(s.stringList("a").empty());
  s.add(1);
  EXPECT_TRUE(s.isList());
  EXPECT_EQ(s.asList().size(), 1u);
}

TEST(Bencode, StringListAcceptsListOrSingleString) {
  auto d = decode("d5:flagsl13:trust-address9:symmetrici3ee3:ICE6:remove3:numi1ee");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->stringList("flags"), (std::vector<std::string_view>{"trust-address", "symmetric"}));
  EXPECT_EQ(d->stringList("ICE"), (std::vector<std::string_view>{"remove"}));
  EXPECT_TRUE(d->stringList("num").empty());
  EXPECT_TRUE(d->stringList("missing").empty());
  EXPECT_TRUE(d->containsString("flags", "symmetric"));
  EXPECT_FALSE(d->containsString("flags", "symmetri"));
  EXPECT_TRUE(d->containsString("ICE", "remove"));
  EXPECT_FALSE(d->containsString("missing", "remove"));
}

TEST(Bencode, DecodePrefixReportsConsumed) {
  size_t used = 0;
  auto v = decodePrefix("i5eREST", used);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->asInteger(), 5);
  EXPECT_EQ(used, 3u);
}

TEST(Bencode, DecodeFromCountsOffsetsFromTheWholeInput) {
  auto v = decodeFrom("abc d1:ai1ee", 4);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->integer("a"), 1);
  EXPECT_EQ(decodeFrom("abc d1:ai1e", 4).error().message,
            "bencode: unterminated dictionary at offset 11");
  EXPECT_EQ(decodeFrom("abc i1ex", 4).error().message,
            "bencode: trailing bytes after the value at offset 7");
  EXPECT_FALSE(decodeFrom("abc", 3));
  EXPECT_FALSE(decodeFrom("abc", 7));
}

}  // namespace
}  // namespace evosip::bencode
