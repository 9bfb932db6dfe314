// libFuzzer target: Message::parse, every accessor and value parser a role may apply, the
// response builder, and an editor round trip whose output must parse again.
#include <cstdint>
#include <string>
#include <string_view>

#include <evosip/sip/auth.hpp>
#include <evosip/sip/editor.hpp>
#include <evosip/sip/message.hpp>
#include <evosip/sip/response.hpp>

#include "fuzz_check.hpp"

using namespace evosip::sip;
using evosip::fuzz::check;

namespace {

void parseValues(const HeaderField& h) {
  switch (h.id) {
    case HeaderId::kVia: {
      ValueSplitter split(h.value);
      while (auto v = split.next()) {
        if (auto via = parseVia(*v)) {
          (void)via->branch();
          (void)via->received();
          (void)via->rport();
          (void)via->maddr();
          (void)via->ttl();
          (void)via->rfc3261Branch();
        }
      }
      break;
    }
    case HeaderId::kFrom:
    case HeaderId::kTo:
    case HeaderId::kContact:
    case HeaderId::kRoute:
    case HeaderId::kRecordRoute:
    case HeaderId::kPath:
    case HeaderId::kReferTo:
    case HeaderId::kReferredBy: {
      ValueSplitter split(h.value);
      while (auto v = split.next()) {
        if (auto na = parseNameAddr(*v)) {
          (void)na->tag();
          (void)na->uri.looseRouting();
          (void)na->uri.portOrDefault();
          na->params.forEach([](const ParamList::Param&) { return true; });
        }
      }
      break;
    }
    case HeaderId::kCSeq:
    case HeaderId::kRAck:
      (void)parseCSeq(h.value);
      break;
    case HeaderId::kAuthorization:
    case HeaderId::kProxyAuthorization:
    case HeaderId::kWwwAuthenticate:
    case HeaderId::kProxyAuthenticate:
      if (auto d = parseDigest(h.value)) {
        (void)unquote(d->username);
        (void)unquote(d->realm);
      }
      break;
    default:
      ParamList(h.value).forEach([](const ParamList::Param&) { return true; });
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  auto parsed = Message::parse(input);
  if (!parsed) {
    return 0;
  }
  const Message& m = *parsed;
  check(m.size() <= input.size());
  check(m.startOffset() <= m.headersBegin() && m.headersBegin() <= m.headersEnd() + 0u);
  check(m.bodyOffset() + m.body().size() <= input.size());
  if (m.isRequest()) {
    (void)parseUri(m.requestUri());
    check(input.substr(m.requestUriOffset(), m.requestUri().size()) == m.requestUri());
  } else {
    check(m.statusCode() >= 100 && m.statusCode() <= 699);
  }
  for (const HeaderField& h : m.headers()) {
    check(h.begin < h.end && h.end <= m.headersEnd());
    check(m.find(h.name) != nullptr);
    (void)m.count(h.id);
    parseValues(h);
  }
  (void)m.callId();
  (void)m.topVia();
  (void)m.cseq();
  (void)m.from();
  (void)m.to();
  (void)m.maxForwards();
  (void)m.contentLength();

  // An untouched message is reproduced exactly.
  MessageEditor same(m);
  check(same.str() == input.substr(m.startOffset(), m.size() - m.startOffset()));

  // The edits of a forwarding proxy; the result must still be a message with the same body.
  MessageEditor ed(m);
  if (const HeaderField* via = m.find(HeaderId::kVia)) {
    if (auto top = m.topVia()) {
      const auto end = static_cast<uint32_t>(top->text.data() - input.data() + top->text.size());
      ed.insertAt(end, ";received=192.0.2.1;rport=5060");
    } else {
      ed.removeFirstValue(*via);
    }
  }
  ed.prependHeader("Via", "SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKfuzz");
  ed.prependHeader("Record-Route", "<sip:192.0.2.9;lr>");
  if (const HeaderField* mf = m.find(HeaderId::kMaxForwards)) {
    ed.replaceValue(*mf, "69");
  }
  if (const HeaderField* route = m.find(HeaderId::kRoute)) {
    ed.removeFirstValue(*route);
  }
  if (const HeaderField* x = m.find("X-Evosip-Foo")) {
    ed.removeHeader(*x);
  }
  if (m.isRequest()) {
    ed.replaceRequestUri("sip:fuzz@192.0.2.10");
  }
  ed.appendHeader("Path", "<sip:192.0.2.9;lr>");
  std::string out;
  ed.writeTo(out);
  check(out.size() == ed.size());
  ParseLimits big;
  big.maxSize = 1 << 20;
  big.maxHeaders = 4096;
  auto again = Message::parse(out, big);
  check(again.has_value());
  check(again->body() == m.body());
  check(again->topVia().has_value());

  if (m.isRequest()) {
    std::string response;
    if (buildResponse(m, 400, "", "fuzztag", "Warning: 399 fuzz \"x\"\r\n", response)) {
      check(Message::parse(response, big).has_value());
    }
  }
  return 0;
}
