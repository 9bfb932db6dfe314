#include <algorithm>
#include <optional>

#include <fmt/format.h>

#include <evosip/app/uas_dialog.hpp>
#include <evosip/sip/response.hpp>
#include <evosip/sip/via_value.hpp>

namespace evosip::app {

namespace {

// "host", "host:port" of a SIP URI -> a numeric endpoint (no DNS in the app).
std::optional<transport::Endpoint> uriEndpoint(const sip::Uri& uri) {
  std::string text = uri.hostType == sip::HostType::kIpv6 ? "[" + std::string(uri.host) + "]"
                                                          : std::string(uri.host);
  auto ep = transport::parseEndpoint(text, uri.portOrDefault());
  if (!ep) {
    return std::nullopt;
  }
  return *ep;
}

// The URI of the first Contact of a request, "" without one.
std::string firstContact(const sip::Message& request) {
  const auto* c = request.find(sip::HeaderId::kContact);
  if (c == nullptr) {
    return {};
  }
  sip::ValueSplitter split(c->value);
  if (auto first = split.next()) {
    if (auto na = sip::parseNameAddr(*first)) {
      return std::string(na->uriText);
    }
  }
  return {};
}

}  // namespace

UasDialog UasDialog::fromInvite(const sip::Message& invite, std::string localTag,
                                const transport::Source& source) {
  UasDialog d;
  d.callId = std::string(invite.callId());
  d.localTag = std::move(localTag);
  d.remoteTag = tagOf(invite.from());
  d.source = source;
  if (auto cseq = invite.cseq()) {
    d.remoteCseq = cseq->number;
  }
  if (const auto* f = invite.find(sip::HeaderId::kFrom)) {
    d.fromValue = std::string(f->value);
  }
  if (const auto* t = invite.find(sip::HeaderId::kTo)) {
    d.toValue = std::string(t->value) + ";tag=" + d.localTag;
  }
  if (auto from = invite.from()) {
    d.callerUri = std::string(from->uriText);
    d.callerUser = std::string(from->uri.user);
  }
  d.remoteTarget = firstContact(invite);
  for (const auto& h : invite.headers()) {
    if (h.id != sip::HeaderId::kRecordRoute) {
      continue;
    }
    d.recordRoute += "Record-Route: " + std::string(h.value) + "\r\n";
    sip::ValueSplitter split(h.value);
    while (auto e = split.next()) {
      d.routeSet.emplace_back(*e);
    }
  }
  return d;
}

void UasDialog::refreshTarget(const sip::Message& request) {
  if (std::string target = firstContact(request); !target.empty()) {
    remoteTarget = std::move(target);
  }
}

bool UasDialog::matches(const sip::Message& request) const {
  return tagOf(request.from()) == remoteTag && tagOf(request.to()) == localTag;
}

UasDialog::Request UasDialog::bye(std::string_view viaHost, uint16_t viaPort,
                                  std::string_view branch) {
  localCseq = std::max<uint32_t>(localCseq + 1, 1);
  return request("BYE", localCseq, viaHost, viaPort, branch);
}

UasDialog::Request UasDialog::request(std::string_view method, uint32_t cseq,
                                      std::string_view viaHost, uint16_t viaPort,
                                      std::string_view branch, std::string_view headers,
                                      std::string_view body) const {
  std::optional<transport::Endpoint> to;
  std::string routes;
  if (!routeSet.empty()) {
    if (auto na = sip::parseNameAddr(routeSet.front())) {
      to = uriEndpoint(na->uri);
    }
    for (const auto& r : routeSet) {
      routes += "Route: " + r + "\r\n";
    }
  } else if (auto uri = sip::parseUri(remoteTarget)) {
    to = uriEndpoint(*uri);
  }
  if (!to) {
    to = source.remote;  // a name we cannot resolve: back where the INVITE came from
  }
  const std::string target = remoteTarget.empty() ? "sip:" + to->str() : remoteTarget;
  std::string via;
  sip::appendVia(via, "UDP", viaHost, viaPort, branch, sip::AskRport::kYes);
  std::string text = fmt::format(
      "{} {} SIP/2.0\r\nVia: {}\r\n{}Max-Forwards: 70\r\n"
      "From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} {}\r\n{}Content-Length: {}\r\n\r\n{}",
      method, target, via, routes, toValue, fromValue, callId, cseq, method, headers, body.size(),
      body);
  return {std::move(text), *to};
}

std::string responseWithSdp(const sip::Message& request, int code, std::string_view reason,
                            std::string_view localTag, std::string_view headers,
                            std::string_view sdp) {
  std::string out;
  if (!sip::buildResponse(request, code, reason, localTag, headers, out)) {
    return {};
  }
  constexpr std::string_view kEmpty = "Content-Length: 0\r\n\r\n";
  if (out.size() >= kEmpty.size() && out.ends_with(kEmpty)) {
    out.resize(out.size() - kEmpty.size());
    out += fmt::format("Content-Length: {}\r\n\r\n", sdp.size());
    out += sdp;
  }
  return out;
}

}  // namespace evosip::app
