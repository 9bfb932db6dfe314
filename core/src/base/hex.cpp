#include <evosip/base/hex.hpp>

namespace evosip {

void appendHex(std::string& out, uint64_t v, int digits) {
  for (int i = digits - 1; i >= 0; --i) {
    out.push_back(hexDigit(static_cast<unsigned>(v >> (i * 4))));
  }
}

void appendHexBytes(std::string& out, std::span<const unsigned char> bytes, HexCase letters) {
  out.reserve(out.size() + bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(hexDigit(c >> 4, letters));
    out.push_back(hexDigit(c, letters));
  }
}

std::string hexEncode(std::span<const unsigned char> bytes) {
  std::string out;
  appendHexBytes(out, bytes);
  return out;
}

std::string hexEscape(unsigned char c) {
  return {'\\', 'x', hexDigit(c >> 4), hexDigit(c)};
}

Result<uint64_t> parseHex(std::string_view s) {
  if (s.empty() || s.size() > 16) {
    return makeError(Errc::kParse, "not 1 to 16 hex digits");
  }
  uint64_t v = 0;
  for (char c : s) {
    unsigned d;
    if (c >= '0' && c <= '9') {
      d = static_cast<unsigned>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      d = static_cast<unsigned>(c - 'a' + 10);
    } else {
      return makeError(Errc::kParse, "not a lower-case hex digit");
    }
    v = (v << 4) | d;
  }
  return v;
}

}  // namespace evosip
