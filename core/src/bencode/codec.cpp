#include <algorithm>
#include <limits>

#include <evosip/base/hex.hpp>
#include <evosip/bencode/bencode.hpp>

namespace evosip::bencode {

namespace {

bool isDigit(char c) {
  return c >= '0' && c <= '9';
}

class Decoder {
 public:
  Decoder(std::string_view text, const Limits& limits, size_t base)
      : text_(text), limits_(limits), base_(base) {}

  Result<Value> value(size_t depth) {
    if (pos_ >= text_.size()) {
      return fail(Errc::kParse, "unexpected end of input");
    }
    if (++elements_ > limits_.maxElements) {
      return fail(Errc::kTooLarge, "more than " + std::to_string(limits_.maxElements) + " values");
    }
    const char c = text_[pos_];
    if (c == 'i') {
      auto v = integer();
      if (!v) {
        return tl::unexpected(v.error());
      }
      return Value(*v);
    }
    if (isDigit(c)) {
      auto s = string();
      if (!s) {
        return tl::unexpected(s.error());
      }
      return Value(*s);
    }
    if (c == 'l' || c == 'd') {
      if (depth >= limits_.maxDepth) {
        return fail(Errc::kTooLarge,
                    "nesting deeper than " + std::to_string(limits_.maxDepth) + " levels");
      }
      return c == 'l' ? list(depth + 1) : dict(depth + 1);
    }
    return fail(Errc::kParse, std::string("unexpected byte '") + printable(c) + "'");
  }

  size_t pos() const { return pos_; }

 private:
  static std::string printable(char c) {
    if (c >= 0x20 && c < 0x7f) {
      return std::string(1, c);
    }
    return hexEscape(static_cast<unsigned char>(c));
  }

  tl::unexpected<Error> fail(Errc code, const std::string& what) const {
    return makeError(code, "bencode: " + what + " at offset " + std::to_string(base_ + pos_));
  }

  Result<int64_t> integer() {
    ++pos_;  // 'i'
    bool negative = false;
    if (pos_ < text_.size() && text_[pos_] == '-') {
      negative = true;
      ++pos_;
    }
    const size_t start = pos_;
    // Magnitude limit: 2^63 for negatives, 2^63 - 1 otherwise.
    const uint64_t max = negative ? uint64_t{1} << 63 : (uint64_t{1} << 63) - 1;
    uint64_t magnitude = 0;
    while (pos_ < text_.size() && isDigit(text_[pos_])) {
      const auto d = static_cast<uint64_t>(text_[pos_] - '0');
      if (magnitude > (max - d) / 10) {
        return fail(Errc::kParse, "integer out of 64-bit range");
      }
      magnitude = magnitude * 10 + d;
      ++pos_;
    }
    if (pos_ == start) {
      return fail(Errc::kParse,
                  pos_ >= text_.size() ? "unterminated integer" : "integer without digits");
    }
    if (text_[start] == '0' && pos_ - start > 1) {
      pos_ = start;
      return fail(Errc::kParse, "leading zero in integer");
    }
    if (negative && magnitude == 0) {
      pos_ = start;
      return fail(Errc::kParse, "negative zero integer");
    }
    if (pos_ >= text_.size()) {
      return fail(Errc::kParse, "unterminated integer");
    }
    if (text_[pos_] != 'e') {
      return fail(Errc::kParse, "expected 'e' after integer digits");
    }
    ++pos_;
    if (!negative) {
      return static_cast<int64_t>(magnitude);
    }
    // -(2^63) has no positive counterpart; negate in unsigned arithmetic.
    return static_cast<int64_t>(~magnitude + 1);
  }

  Result<std::string_view> string() {
    const size_t start = pos_;
    uint64_t length = 0;
    while (pos_ < text_.size() && isDigit(text_[pos_])) {
      length = length * 10 + static_cast<uint64_t>(text_[pos_] - '0');
      ++pos_;
      if (length > text_.size()) {
        pos_ = start;
        return fail(Errc::kParse, "string length exceeds the input");
      }
    }
    if (text_[start] == '0' && pos_ - start > 1) {
      pos_ = start;
      return fail(Errc::kParse, "leading zero in string length");
    }
    if (pos_ >= text_.size() || text_[pos_] != ':') {
      return fail(Errc::kParse, "expected ':' after string length");
    }
    ++pos_;
    if (length > text_.size() - pos_) {
      pos_ = start;
      return fail(Errc::kParse, "string length " + std::to_string(length) + " exceeds the input");
    }
    std::string_view s = text_.substr(pos_, static_cast<size_t>(length));
    pos_ += static_cast<size_t>(length);
    return s;
  }

  Result<Value> list(size_t depth) {
    ++pos_;  // 'l'
    Value::List items;
    while (true) {
      if (pos_ >= text_.size()) {
        return fail(Errc::kParse, "unterminated list");
      }
      if (text_[pos_] == 'e') {
        ++pos_;
        return Value(std::move(items));
      }
      auto v = value(depth);
      if (!v) {
        return v;
      }
      items.push_back(std::move(*v));
    }
  }

  Result<Value> dict(size_t depth) {
    ++pos_;  // 'd'
    Value::Dict entries;
    while (true) {
      if (pos_ >= text_.size()) {
        return fail(Errc::kParse, "unterminated dictionary");
      }
      if (text_[pos_] == 'e') {
        ++pos_;
        return Value(std::move(entries));
      }
      if (!isDigit(text_[pos_])) {
        return fail(Errc::kParse, "dictionary key is not a byte string");
      }
      if (++elements_ > limits_.maxElements) {
        return fail(Errc::kTooLarge,
                    "more than " + std::to_string(limits_.maxElements) + " values");
      }
      auto key = string();
      if (!key) {
        return tl::unexpected(key.error());
      }
      if (pos_ >= text_.size() || text_[pos_] == 'e') {
        return fail(Errc::kParse, "dictionary key without a value");
      }
      auto v = value(depth);
      if (!v) {
        return v;
      }
      entries.push_back(DictEntry{std::string(*key), std::move(*v)});
    }
  }

  std::string_view text_;
  const Limits& limits_;
  size_t base_;
  size_t pos_ = 0;
  size_t elements_ = 0;
};

Result<Value> decodeAt(std::string_view text, const Limits& limits, size_t base, bool whole,
                       size_t& consumed) {
  if (text.size() > limits.maxInputSize) {
    return makeError(Errc::kTooLarge, "bencode: input of " + std::to_string(text.size()) +
                                          " bytes exceeds " + std::to_string(limits.maxInputSize));
  }
  Decoder d(text, limits, base);
  auto v = d.value(0);
  if (!v) {
    return v;
  }
  if (whole && d.pos() != text.size()) {
    return makeError(Errc::kParse, "bencode: trailing bytes after the value at offset " +
                                       std::to_string(base + d.pos()));
  }
  consumed = d.pos();
  return v;
}

void encodeString(std::string_view s, std::string& out) {
  out += std::to_string(s.size());
  out += ':';
  out += s;
}

}  // namespace

Result<Value> decode(std::string_view text, const Limits& limits) {
  size_t consumed = 0;
  return decodeAt(text, limits, 0, true, consumed);
}

Result<Value> decodeFrom(std::string_view input, size_t start, const Limits& limits) {
  size_t consumed = 0;
  return decodeAt(input.substr(std::min(start, input.size())), limits, start, true, consumed);
}

Result<Value> decodePrefix(std::string_view text, size_t& consumed, const Limits& limits) {
  consumed = 0;
  return decodeAt(text, limits, 0, false, consumed);
}

void encodeTo(const Value& value, std::string& out) {
  switch (value.type()) {
    case Type::kInteger:
      out += 'i';
      out += std::to_string(value.asInteger());
      out += 'e';
      return;
    case Type::kString:
      encodeString(value.asString(), out);
      return;
    case Type::kList:
      out += 'l';
      for (const auto& v : value.asList()) {
        encodeTo(v, out);
      }
      out += 'e';
      return;
    case Type::kDict: {
      const auto& d = value.asDict();
      // Keys sorted as raw bytes (std::string compares by char_traits<char>, which compares
      // as unsigned char). Stable so repeated keys keep their order.
      std::vector<const DictEntry*> sorted;
      sorted.reserve(d.size());
      for (const auto& e : d) {
        sorted.push_back(&e);
      }
      std::stable_sort(sorted.begin(), sorted.end(),
                       [](const DictEntry* a, const DictEntry* b) { return a->key < b->key; });
      out += 'd';
      for (const auto* e : sorted) {
        encodeString(e->key, out);
        encodeTo(e->value, out);
      }
      out += 'e';
      return;
    }
  }
}

std::string encode(const Value& value) {
  std::string out;
  encodeTo(value, out);
  return out;
}

}  // namespace evosip::bencode
