#pragma once
// Bencode (BitTorrent BEP 3) values, decoder and encoder. The framing of rtpengine's ng control
// protocol around a bencoded dictionary is in ng_frame.hpp.
//
// Decoding never throws and never crashes on any input; every error names the byte offset.
// Values own their bytes (a decoded Value outlives the input it came from).
//
//   auto v = bencode::decode(text);
//   if (!v) { ... v.error().message ... }
//   auto command = v->string("command");          // optional<string_view>
//   auto flags = v->stringList("flags");          // list or single string
//   bencode::Value reply = bencode::Value::makeDict();
//   reply.set("result", "ok").set("sdp", rewrittenSdp);
//   std::string bytes = bencode::encode(reply);

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include <evosip/base/result.hpp>

namespace evosip::bencode {

enum class Type : uint8_t { kInteger, kString, kList, kDict };

struct DictEntry;

template <typename I>
concept OtherInteger =
    std::is_integral_v<I> && !std::is_same_v<I, bool> && !std::is_same_v<I, int64_t>;

// One bencode value: an integer (int64), a byte string, a list, or a dictionary. Dictionaries
// keep their keys in wire order (rtpengine and Kamailio do not always sort them); encode()
// writes keys sorted by their raw bytes, as the bencode specification requires.
class Value {
 public:
  using List = std::vector<Value>;
  using Dict = std::vector<DictEntry>;

  Value();  // the integer 0
  Value(int64_t v);
  // Any other integer type (int, uint16_t ports, size_t counts); values above INT64_MAX wrap.
  template <OtherInteger I>
  Value(I v);
  Value(std::string v);
  Value(std::string_view v);
  Value(const char* v);
  Value(List v);
  Value(Dict v);

  static Value makeList();
  static Value makeDict();

  Type type() const;
  bool isInteger() const { return type() == Type::kInteger; }
  bool isString() const { return type() == Type::kString; }
  bool isList() const { return type() == Type::kList; }
  bool isDict() const { return type() == Type::kDict; }

  // Typed views; on a value of another type they return 0 / "" / an empty list or dict.
  int64_t asInteger() const;
  std::string_view asString() const;
  const List& asList() const;
  const Dict& asDict() const;

  // --- Dictionary lookups (all return "absent" when this is not a dictionary). ---
  // The first entry with this key (bencode forbids duplicates; if a sender repeats a key the
  // first one wins), or nullptr.
  const Value* find(std::string_view key) const;
  bool has(std::string_view key) const { return find(key) != nullptr; }
  // The value if present and a byte string / integer, else nullopt. The view points into this
  // Value and lives as long as it is not modified.
  std::optional<std::string_view> string(std::string_view key) const;
  std::optional<int64_t> integer(std::string_view key) const;
  // The key as a list of strings whether it was sent as a list (["trust-address","symmetric"])
  // or as one string ("remove" -> {"remove"}). Non-string list elements are skipped. Absent key
  // or another type -> empty. rtpengine accepts both forms for flags, replace, direction, ICE,
  // "received from", rtcp-mux, SDES, ...
  std::vector<std::string_view> stringList(std::string_view key) const;
  // True if stringList(key) contains value exactly (e.g. containsString("flags", "symmetric")).
  bool containsString(std::string_view key, std::string_view value) const;

  // --- Builders (for replies). ---
  // Dictionary: replaces the first entry with this key, or appends one. Turns a non-dict value
  // into an empty dict first. Returns *this for chaining.
  Value& set(std::string_view key, Value v);
  // List: appends. Turns a non-list value into an empty list first. Returns *this.
  Value& add(Value v);
  // Mutable access; the value becomes a list / dict (emptied) if it was another type.
  List& mutableList();
  Dict& mutableDict();

  friend bool operator==(const Value& a, const Value& b);
  friend bool operator!=(const Value& a, const Value& b) { return !(a == b); }

 private:
  std::variant<int64_t, std::string, List, Dict> v_;
};

struct DictEntry {
  std::string key;
  Value value;

  friend bool operator==(const DictEntry& a, const DictEntry& b) {
    return a.key == b.key && a.value == b.value;
  }
};

// Defined here, where DictEntry is complete: a delegating constructor may destroy the variant.
template <OtherInteger I>
Value::Value(I v) : Value(static_cast<int64_t>(v)) {}

struct Limits {
  size_t maxDepth = 32;       // nesting of lists and dictionaries
  size_t maxElements = 4096;  // values in total (each list element, dict key and dict value)
  size_t maxInputSize = 1 << 20;
};

// Decodes exactly one value that spans all of `text`. Errors (Errc::kParse, or kTooLarge for a
// limit) carry a message with the byte offset, e.g. "bencode: leading zero in integer at
// offset 3". Rejected: "i-0e", "i03e", "i e", integers outside int64, "03:abc", strings longer
// than the input, unterminated lists/dicts, non-string dict keys, trailing bytes.
Result<Value> decode(std::string_view text, const Limits& limits = {});

// Decodes exactly one value that spans input[start..], as decode() does, for a value framed
// inside a larger input (an ng datagram): error offsets count from the start of `input`.
Result<Value> decodeFrom(std::string_view input, size_t start, const Limits& limits = {});

// Decodes one value at the start of `text` and reports how many bytes it used (trailing bytes
// are allowed). This is for streams.
Result<Value> decodePrefix(std::string_view text, size_t& consumed, const Limits& limits = {});

// Canonical encoding (dictionary keys sorted bytewise). encodeTo appends to `out`.
std::string encode(const Value& value);
void encodeTo(const Value& value, std::string& out);

}  // namespace evosip::bencode
