// RFC 4475 and RFC 5118 torture messages (tests/data/rfc4475, tests/data/rfc5118): every message
// of the manifests gets the verdict the manifest gives, from the layer it names, and the valid
// ones have their key fields checked.

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <evosip/base/strings.hpp>
#include <evosip/sip/auth.hpp>
#include <evosip/sip/message.hpp>

namespace evosip::sip {
namespace {

const std::string kDataDir = EVOSIP_TEST_DATA_DIR;

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

struct Entry {
  std::string name, section, verdict, layer;
};

std::vector<Entry> loadManifest(const std::string& dir) {
  std::vector<Entry> out;
  std::istringstream in(readFile(dir + "/manifest.txt"));
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') {
      continue;
    }
    std::istringstream fields(line);
    Entry e;
    fields >> e.name >> e.section >> e.verdict >> e.layer;
    out.push_back(e);
  }
  return out;
}

// Every value of every header with this id (comma-separated lists split).
std::vector<std::string_view> values(const Message& m, HeaderId id, bool* ok) {
  std::vector<std::string_view> out;
  for (const HeaderField& h : m.headers()) {
    if (h.id != id) {
      continue;
    }
    ValueSplitter split(h.value);
    while (auto v = split.next()) {
      out.push_back(*v);
    }
    *ok = *ok && split.ok();
  }
  return out;
}

// The first layer that rejects the message, in the order a proxy applies them; "none" when every
// check passes. The proxy rules are the ones RFC 4475 section 3.3 expects of a proxy.
std::string rejectingLayer(std::string_view bytes) {
  auto parsed = Message::parse(bytes);
  if (!parsed) {
    return "parse";
  }
  const Message& m = *parsed;
  std::optional<Uri> ruri;
  if (m.isRequest()) {
    auto u = parseUri(m.requestUri());
    if (!u) {
      return "uri";
    }
    ruri = *u;
  }
  bool ok = true;
  for (std::string_view v : values(m, HeaderId::kVia, &ok)) {
    ok = ok && parseVia(v).has_value();
  }
  if (!ok) {
    return "via";
  }
  if (m.find(HeaderId::kCSeq) != nullptr && !m.cseq()) {
    return "cseq";
  }
  for (HeaderId id : {HeaderId::kTo, HeaderId::kFrom}) {
    if (const HeaderField* h = m.find(id); h != nullptr && !parseNameAddr(h->value)) {
      return "nameaddr";
    }
  }
  for (std::string_view v : values(m, HeaderId::kContact, &ok)) {
    ok = ok && parseNameAddr(v).has_value();
  }
  if (!ok) {
    return "nameaddr";
  }
  for (HeaderId id :
       {HeaderId::kTo, HeaderId::kFrom, HeaderId::kCallId, HeaderId::kCSeq, HeaderId::kVia}) {
    if (m.find(id) == nullptr) {
      return "proxy:required-headers";
    }
  }
  for (HeaderId id : {HeaderId::kTo, HeaderId::kFrom, HeaderId::kCallId, HeaderId::kCSeq,
                      HeaderId::kMaxForwards}) {
    if (m.count(id) > 1) {
      return "proxy:single-value";
    }
  }
  if (m.isRequest()) {
    if (m.cseq()->methodText != m.methodText()) {
      return "proxy:cseq-method";
    }
    if (ruri->scheme == UriScheme::kOther) {
      return "proxy:ruri-scheme";
    }
    if (!ruri->headers.empty()) {
      return "proxy:ruri-headers";
    }
    if (m.find(HeaderId::kProxyRequire) != nullptr) {
      return "proxy:proxy-require";  // evosip supports no proxy extension
    }
    if (m.find(HeaderId::kMaxForwards) != nullptr && m.maxForwards() == 0u) {
      return "proxy:max-forwards";
    }
  }
  return "none";
}

void checkManifest(const std::string& dir) {
  const auto entries = loadManifest(dir);
  ASSERT_FALSE(entries.empty());
  std::vector<std::string> listed, present;
  for (const Entry& e : entries) {
    listed.push_back(e.name + ".sip");
  }
  for (const auto& f : std::filesystem::directory_iterator(dir)) {
    if (f.path().extension() == ".sip") {
      present.push_back(f.path().filename().string());
    }
  }
  std::sort(listed.begin(), listed.end());
  std::sort(present.begin(), present.end());
  EXPECT_EQ(listed, present) << "manifest and files of " << dir << " differ";

  for (const Entry& e : entries) {
    SCOPED_TRACE(e.name + " (" + e.section + ")");
    const std::string bytes = readFile(dir + "/" + e.name + ".sip");
    ASSERT_FALSE(bytes.empty());
    ASSERT_TRUE(e.verdict == "valid" || e.verdict == "invalid");
    const std::string layer = rejectingLayer(bytes);
    if (e.verdict == "valid") {
      EXPECT_EQ(layer, "none");
    } else if (e.layer == "unchecked") {
      EXPECT_EQ(layer, "none") << "an unchecked defect is now caught: update the manifest";
    } else {
      EXPECT_EQ(layer, e.layer);
    }
  }
}

TEST(Rfc4475, EveryMessageGetsItsVerdictFromTheNamedLayer) {
  checkManifest(kDataDir + "/rfc4475");
}

TEST(Rfc5118, EveryMessageGetsItsVerdictFromTheNamedLayer) {
  checkManifest(kDataDir + "/rfc5118");
}

struct Key {
  std::string name;
  std::string start;  // method or status code
  std::string ruri;
  std::string callId;
  std::string branch;  // of the top Via
  uint32_t cseq;
  std::string cseqMethod;
  size_t headers;
};

class ValidMessage : public ::testing::TestWithParam<Key> {};

TEST_P(ValidMessage, KeyFields) {
  const Key& k = GetParam();
  const std::string dir =
      std::filesystem::exists(kDataDir + "/rfc4475/" + k.name + ".sip") ? "/rfc4475/" : "/rfc5118/";
  const std::string bytes = readFile(kDataDir + dir + k.name + ".sip");
  auto m = Message::parse(bytes);
  ASSERT_TRUE(m) << m.error().message;
  if (m->isRequest()) {
    EXPECT_EQ(m->methodText(), k.start);
    EXPECT_EQ(m->requestUri(), k.ruri);
  } else {
    EXPECT_EQ(std::to_string(m->statusCode()), k.start);
  }
  EXPECT_EQ(m->callId(), k.callId);
  auto via = m->topVia();
  ASSERT_TRUE(via) << via.error().message;
  EXPECT_EQ(via->branch().value_or(""), k.branch);
  auto cseq = m->cseq();
  ASSERT_TRUE(cseq);
  EXPECT_EQ(cseq->number, k.cseq);
  EXPECT_EQ(cseq->methodText, k.cseqMethod);
  EXPECT_EQ(m->headers().size(), k.headers);
  auto from = m->from();
  ASSERT_TRUE(from);
  EXPECT_TRUE(m->to());
}

const std::string kIntmeth = "!interesting-Method0123456789_*+`.%indeed'~";

INSTANTIATE_TEST_SUITE_P(
    Rfc4475, ValidMessage,
    ::testing::Values(
        Key{"wsinv", "INVITE", "sip:vivekg@chair-dnrc.example.com;unknownparam",
            "wsinv.ndaksdj@192.0.2.1", "390skdjuw", 9, "INVITE", 14},
        Key{"intmeth", kIntmeth,
            "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too."
            "(doesn't-it)@example.com",
            "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{", "z9hG4bK-.!%66*_+`'~", 139122385,
            kIntmeth, 8},
        Key{"esc01", "INVITE", "sip:sips%3Auser%40example.com@example.net",
            "esc01.239409asdfakjkn23onasd0-3234", "z9hG4bKkdjuw", 234234, "INVITE", 9},
        Key{"escnull", "REGISTER", "sip:example.com", "escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd",
            "z9hG4bKkdjuw", 14398234, "REGISTER", 9},
        Key{"esc02", "RE%47IST%45R", "sip:registrar.example.com",
            "esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf", "z9hG4bK209%fzsnel234", 29344,
            "RE%47IST%45R", 10},
        Key{"lwsdisp", "OPTIONS", "sip:user@example.com", "lwsdisp.1234abcd@funky.example.com",
            "z9hG4bKkdjuw", 60, "OPTIONS", 7},
        Key{"longreq", "INVITE", "sip:user@example.com",
            "longreq.onereallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreally"
            "reallyreallyreallyreallyreallyreallyreallyreallylongcallid",
            "", 3882340, "INVITE", 43},
        Key{"dblreq", "REGISTER", "sip:example.com", "dblreq.0ha0isndaksdj99sdfafnl3lk233412",
            "z9hG4bKkdjuw23492", 8, "REGISTER", 8},
        Key{"semiuri", "OPTIONS", "sip:user;par=u%40example.net@example.com",
            "semiuri.0ha0isndaksdj", "z9hG4bKkdjuw", 8, "OPTIONS", 8},
        Key{"transports", "OPTIONS", "sip:user@example.com", "transports.kijh4akdnaqjkwendsasfdj",
            "z9hG4bKkdjuw", 60, "OPTIONS", 12},
        Key{"mpart01", "MESSAGE", "sip:kumiko@example.org",
            "3d9485ad0c49859b@Zmx1ZmZ5LW1hYy0xNi5sb2NhbA..",
            "z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-", 1, "MESSAGE", 14},
        Key{"unreason", "200", "", "unreason.1234ksdfak3j2erwedfsASdf", "z9hG4bK1324923", 35,
            "INVITE", 8},
        Key{"noreason", "100", "", "noreason.asndj203insdf99223ndf", "z9hG4bK2398ndaoe", 35,
            "INVITE", 7},
        Key{"badbranch", "OPTIONS", "sip:user@example.com", "badbranch.sadonfo23i420jv0as0derf3j3n",
            "z9hG4bK", 8, "OPTIONS", 8},
        Key{"cparam01", "REGISTER", "sip:example.com", "cparam01.70710@saturn.example.com",
            "z9hG4bKkdjuw", 2, "REGISTER", 8},
        Key{"cparam02", "REGISTER", "sip:example.com", "cparam02.70710@saturn.example.com",
            "z9hG4bKkdjuw", 3, "REGISTER", 8},
        Key{"inv2543", "INVITE", "sip:UserB@example.com", "inv2543.1717@ift.client.example.com", "",
            56, "INVITE", 7}),
    [](const ::testing::TestParamInfo<Key>& info) { return info.param.name; });

INSTANTIATE_TEST_SUITE_P(
    Rfc5118, ValidMessage,
    ::testing::Values(Key{"ipv6-good", "REGISTER", "sip:[2001:db8::10]",
                          "SSG9559905523997077@hlau_4100", "z9hG4bKas3-111", 98176, "REGISTER", 8},
                      Key{"port-ambiguous", "REGISTER", "sip:[2001:db8::10:5070]",
                          "SSG9559905523997077@hlau_4100", "z9hG4bKas3-111", 98176, "REGISTER", 8},
                      Key{"ipv4-mapped-ipv6", "INVITE", "sip:user@example.com",
                          "SSG9559905523997077@hlau_4100", "z9hG4bKbh19", 612, "INVITE", 10}),
    [](const ::testing::TestParamInfo<Key>& info) {
      std::string n = info.param.name;
      std::replace(n.begin(), n.end(), '-', '_');
      return n;
    });

Message parseFile(const std::string& relative, std::string& storage) {
  storage = readFile(kDataDir + relative);
  auto m = Message::parse(storage);
  EXPECT_TRUE(m) << relative;
  return *m;
}

TEST(Rfc4475Detail, WsinvFoldedValues) {
  std::string buf;
  const Message m = parseFile("/rfc4475/wsinv.sip", buf);
  EXPECT_EQ(m.maxForwards(), 68u);
  EXPECT_EQ(m.to()->tag(), "1918181833n");
  EXPECT_EQ(m.from()->tag(), "98asjd8");
  EXPECT_EQ(m.from()->displayName, "\"J Rosenberg \\\\\\\"\"");
  EXPECT_EQ(m.body().size(), 150u);
  bool ok = true;
  auto vias = values(m, HeaderId::kVia, &ok);
  ASSERT_EQ(vias.size(), 3u);
  auto second = parseVia(vias[1]);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->transport, "TCP");
  EXPECT_EQ(second->host, "spindle.example.com");
  EXPECT_EQ(second->branch(), "z9hG4bK9ikj8");
  EXPECT_EQ(parseVia(vias[2])->branch(), "z9hG4bK30239");
  auto contact = parseNameAddr(m.find(HeaderId::kContact)->value);
  ASSERT_TRUE(contact);
  EXPECT_EQ(contact->params.get("newparam"), "newvalue");
  EXPECT_TRUE(contact->params.has("secondparam"));
  EXPECT_EQ(contact->params.get("q"), "0.33");
  EXPECT_EQ(m.find(HeaderId::kSubject)->value, "");
  auto route = parseNameAddr(m.find(HeaderId::kRoute)->value);
  ASSERT_TRUE(route);
  EXPECT_TRUE(route->uri.looseRouting());
  EXPECT_EQ(route->uri.params.get("unknownwith"), "value");
}

TEST(Rfc4475Detail, IntmethQuotedControlCharactersAndPassword) {
  std::string buf;
  const Message m = parseFile("/rfc4475/intmeth.sip", buf);
  EXPECT_EQ(m.method(), Method::kOther);
  auto ruri = parseUri(m.requestUri());
  ASSERT_TRUE(ruri);
  EXPECT_EQ(ruri->user, "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*");
  EXPECT_EQ(ruri->password, "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)");
  auto to = m.to();
  ASSERT_TRUE(to);
  EXPECT_EQ(to->displayName, std::string_view("\"BEL:\\\x07 NUL:\\\0 DEL:\\\x7F\"", 22));
  EXPECT_EQ(m.from()->tag(), "_token~1'+`*%!-.");
  EXPECT_EQ(m.maxForwards(), 255u);
}

TEST(Rfc4475Detail, DatagramTailAndBodies) {
  std::string buf;
  const Message dbl = parseFile("/rfc4475/dblreq.sip", buf);
  EXPECT_EQ(dbl.body(), "");
  EXPECT_LT(dbl.size(), buf.size());  // the INVITE after the REGISTER is not part of it
  std::string mp;
  const Message mpart = parseFile("/rfc4475/mpart01.sip", mp);
  EXPECT_EQ(mpart.body().size(), 553u);
  EXPECT_EQ(mpart.body().substr(mpart.body().size() - 22), "--7a9cbec02ceef655--\r\n");
  std::string ur;
  const Message unreason = parseFile("/rfc4475/unreason.sip", ur);
  EXPECT_EQ(unreason.reasonPhrase().substr(0, 15), "= 2**3 * 5**2 \xD0");
  std::string nr;
  EXPECT_EQ(parseFile("/rfc4475/noreason.sip", nr).reasonPhrase(), "");
  std::string inv;
  const Message inv2543 = parseFile("/rfc4475/inv2543.sip", inv);
  EXPECT_FALSE(inv2543.contentLength());
  EXPECT_EQ(inv2543.body().size(), 105u);
  EXPECT_FALSE(inv2543.topVia()->rfc3261Branch());
}

TEST(Rfc4475Detail, HeaderCountsAndParameterOwnership) {
  std::string lr;
  const Message longreq = parseFile("/rfc4475/longreq.sip", lr);
  EXPECT_EQ(longreq.count(HeaderId::kVia), 34u);
  EXPECT_EQ(longreq.topVia()->host, "sip33.example.com");
  EXPECT_EQ(longreq.to()->uri.port, 6000);
  std::string t;
  const Message transports = parseFile("/rfc4475/transports.sip", t);
  std::vector<std::string_view> seen;
  for (const HeaderField& h : transports.headers()) {
    if (h.id == HeaderId::kVia) {
      seen.push_back(parseVia(h.value)->transport);
    }
  }
  EXPECT_EQ(seen, (std::vector<std::string_view>{"UDP", "SCTP", "TLS", "UNKNOWN", "TCP"}));
  std::string c1, c2;
  auto addrSpec = parseNameAddr(parseFile("/rfc4475/cparam01.sip", c1).find("Contact")->value);
  ASSERT_TRUE(addrSpec);
  EXPECT_TRUE(addrSpec->params.has("unknownparam"));
  EXPECT_FALSE(addrSpec->uri.params.has("unknownparam"));
  auto nameAddr = parseNameAddr(parseFile("/rfc4475/cparam02.sip", c2).find("Contact")->value);
  ASSERT_TRUE(nameAddr);
  EXPECT_FALSE(nameAddr->params.has("unknownparam"));
  EXPECT_TRUE(nameAddr->uri.params.has("unknownparam"));
  std::string esc;
  const Message esc02 = parseFile("/rfc4475/esc02.sip", esc);
  EXPECT_EQ(esc02.count(HeaderId::kContact), 2u);  // C%6Fntact is not Contact
  std::string ra;
  auto digest =
      parseDigest(parseFile("/rfc4475/regaut01.sip", ra).find(HeaderId::kAuthorization)->value);
  ASSERT_TRUE(digest);
  EXPECT_FALSE(iequals(digest->scheme, "Digest"));
}

TEST(Rfc4475Detail, RejectionReasons) {
  auto bad = [](const char* name) {
    return Message::parse(readFile(kDataDir + "/rfc4475/" + name + ".sip"));
  };
  EXPECT_EQ(bad("badvers").error().code, Errc::kInvalid);
  EXPECT_EQ(bad("clerr").error().code, Errc::kParse);
  std::string s2;
  const Message scalar02 = parseFile("/rfc4475/scalar02.sip", s2);
  EXPECT_FALSE(scalar02.maxForwards());  // 300 is out of range too
  EXPECT_FALSE(scalar02.expires());      // 10^100
  std::string bd;
  const Message baddate = parseFile("/rfc4475/baddate.sip", bd);
  EXPECT_EQ(baddate.find("Date")->value, "Fri, 01 Jan 2010 16:00:00 EST");
  // baddn's display name is rejected by the name-addr parser as well.
  const std::string baddn = readFile(kDataDir + "/rfc4475/baddn.sip");
  EXPECT_FALSE(Message::parse(baddn + "\r\n")->from());
}

TEST(Rfc5118Detail, Ipv6References) {
  std::string a, b, c, d, e, f;
  const Message ambiguous = parseFile("/rfc5118/port-ambiguous.sip", a);
  auto amb = parseUri(ambiguous.requestUri());
  ASSERT_TRUE(amb);
  EXPECT_EQ(amb->host, "2001:db8::10:5070");
  EXPECT_EQ(amb->port, 0);
  auto unamb = parseUri(parseFile("/rfc5118/port-unambiguous.sip", b).requestUri());
  ASSERT_TRUE(unamb);
  EXPECT_EQ(unamb->host, "2001:db8::10");
  EXPECT_EQ(unamb->port, 5070);
  EXPECT_EQ(parseFile("/rfc5118/via-received-param-with-delim.sip", c).topVia()->received(),
            "[2001:db8::9:255]");
  EXPECT_EQ(parseFile("/rfc5118/via-received-param-no-delim.sip", d).topVia()->received(),
            "2001:db8::9:255");
  const Message mult = parseFile("/rfc5118/mult-ip-in-header.sip", e);
  std::vector<HostType> types;
  for (const HeaderField& h : mult.headers()) {
    if (h.id == HeaderId::kVia) {
      types.push_back(parseVia(h.value)->hostType);
    }
  }
  EXPECT_EQ(types, (std::vector<HostType>{HostType::kIpv6, HostType::kIpv4, HostType::kIpv6}));
  EXPECT_EQ(mult.topVia()->port, 6050);
  auto threeColons = parseUri(parseFile("/rfc5118/ipv6-bug-abnf-3-colons.sip", f).requestUri());
  ASSERT_TRUE(threeColons);
  EXPECT_EQ(threeColons->host, "2001:db8:::192.0.2.1");
  EXPECT_EQ(threeColons->hostType, HostType::kIpv6);
  EXPECT_FALSE(parseUri("sip:[2001:db8:::10]"));
  EXPECT_FALSE(parseUri("sip:[2001:db8::1:::192.0.2.1]"));
}

}  // namespace
}  // namespace evosip::sip
