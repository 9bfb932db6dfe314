// DNS response parsing with libresolv's ns_initparse/ns_parserr (bounds-checked walks over the
// message, name decompression by dn_expand).

#include <algorithm>
#include <arpa/nameser.h>
#include <array>
#include <cctype>
#include <climits>
#include <resolv.h>

#include <fmt/format.h>

#include <evosip/transport/resolver.hpp>

namespace evosip::transport {

std::string canonicalName(std::string_view name) {
  std::string out(name);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  while (!out.empty() && out.back() == '.') {
    out.pop_back();
  }
  return out;
}

namespace {

// The name at `at` inside the message, decompressed.
Result<std::string> expandName(const ns_msg& msg, const u_char* at) {
  std::array<char, NS_MAXDNAME> buf{};
  if (dn_expand(ns_msg_base(msg), ns_msg_end(msg), at, buf.data(), buf.size()) < 0) {
    return makeError(Errc::kParse, "a name in a record does not decompress");
  }
  return canonicalName(buf.data());
}

// One record of a section, or nullopt for a type or class the resolver does not use.
Result<std::optional<DnsRecord>> readRecord(const ns_msg& msg, const ns_rr& rr) {
  if (ns_rr_class(rr) != ns_c_in) {
    return std::nullopt;
  }
  DnsRecord rec;
  rec.name = canonicalName(ns_rr_name(rr));
  // RFC 2181 8: a TTL with the most significant bit set counts as zero.
  rec.ttl = ns_rr_ttl(rr) > INT32_MAX ? 0 : ns_rr_ttl(rr);
  const u_char* data = ns_rr_rdata(rr);
  const size_t len = ns_rr_rdlen(rr);
  switch (ns_rr_type(rr)) {
    case ns_t_a: {
      if (len != 4) {
        return makeError(Errc::kParse, "an A record is not 4 bytes long");
      }
      std::array<unsigned char, 4> bytes{};
      std::copy(data, data + 4, bytes.begin());
      rec.type = DnsRecord::Type::kA;
      rec.address = boost::asio::ip::address_v4(bytes);
      return rec;
    }
    case ns_t_aaaa: {
      if (len != 16) {
        return makeError(Errc::kParse, "an AAAA record is not 16 bytes long");
      }
      std::array<unsigned char, 16> bytes{};
      std::copy(data, data + 16, bytes.begin());
      rec.type = DnsRecord::Type::kAaaa;
      rec.address = boost::asio::ip::address_v6(bytes);
      return rec;
    }
    case ns_t_srv: {
      if (len < 7) {
        return makeError(Errc::kParse, "an SRV record is shorter than 7 bytes");
      }
      rec.type = DnsRecord::Type::kSrv;
      rec.priority = ns_get16(data);
      rec.weight = ns_get16(data + 2);
      rec.port = ns_get16(data + 4);
      auto target = expandName(msg, data + 6);
      if (!target) {
        return tl::unexpected(target.error());
      }
      rec.target = std::move(*target);
      return rec;
    }
    case ns_t_cname: {
      auto target = expandName(msg, data);
      if (!target) {
        return tl::unexpected(target.error());
      }
      rec.type = DnsRecord::Type::kCname;
      rec.target = std::move(*target);
      return rec;
    }
    default:
      return std::nullopt;
  }
}

Result<void> readSection(ns_msg& msg, ns_sect section, std::vector<DnsRecord>& out) {
  const int count = ns_msg_count(msg, section);
  for (int i = 0; i < count; ++i) {
    ns_rr rr;
    if (ns_parserr(&msg, section, i, &rr) < 0) {
      return makeError(Errc::kParse, fmt::format("record {} of a section does not parse", i));
    }
    auto rec = readRecord(msg, rr);
    if (!rec) {
      return tl::unexpected(rec.error());
    }
    if (*rec) {
      out.push_back(std::move(**rec));
    }
  }
  return {};
}

}  // namespace

Result<DnsAnswer> parseDnsAnswer(std::span<const uint8_t> message) {
  ns_msg msg;
  if (message.size() < NS_HFIXEDSZ || message.size() > 65535 ||
      ns_initparse(message.data(), static_cast<int>(message.size()), &msg) < 0) {
    return makeError(Errc::kParse, "not a DNS message");
  }
  if (ns_msg_getflag(msg, ns_f_qr) != 1) {
    return makeError(Errc::kParse, "not a DNS response");
  }
  DnsAnswer answer;
  answer.rcode = ns_msg_getflag(msg, ns_f_rcode);
  if (auto ok = readSection(msg, ns_s_an, answer.answers); !ok) {
    return tl::unexpected(ok.error());
  }
  if (auto ok = readSection(msg, ns_s_ar, answer.additional); !ok) {
    return tl::unexpected(ok.error());
  }
  return answer;
}

std::vector<boost::asio::ip::address> addressesOf(const DnsAnswer& answer, std::string_view name,
                                                  uint32_t& ttl) {
  std::vector<std::string> names{canonicalName(name)};
  // Follow CNAMEs a few steps; a loop stops at the bound.
  for (size_t step = 0; step < 8; ++step) {
    bool grew = false;
    for (const auto& rec : answer.answers) {
      if (rec.type == DnsRecord::Type::kCname && rec.name == names.back()) {
        ttl = std::min(ttl, rec.ttl);
        names.push_back(rec.target);
        grew = true;
        break;
      }
    }
    if (!grew) {
      break;
    }
  }
  std::vector<boost::asio::ip::address> out;
  auto take = [&](const std::vector<DnsRecord>& section) {
    for (const auto& rec : section) {
      if ((rec.type == DnsRecord::Type::kA || rec.type == DnsRecord::Type::kAaaa) &&
          std::find(names.begin(), names.end(), rec.name) != names.end() &&
          std::find(out.begin(), out.end(), rec.address) == out.end()) {
        ttl = std::min(ttl, rec.ttl);
        out.push_back(rec.address);
      }
    }
  };
  take(answer.answers);
  take(answer.additional);
  return out;
}

}  // namespace evosip::transport
