#include <evosip/sip/via_value.hpp>

namespace evosip::sip {
namespace {

void appendParams(std::string& out, std::string_view branch, AskRport rport) {
  out.append(";branch=").append(branch);
  if (rport == AskRport::kYes) {
    out.append(";rport");
  }
}

}  // namespace

void appendVia(std::string& out, std::string_view transport, std::string_view sentBy,
               std::string_view branch, AskRport rport) {
  out.append("SIP/2.0/").append(transport).append(" ").append(sentBy);
  appendParams(out, branch, rport);
}

void appendVia(std::string& out, std::string_view transport, std::string_view host, uint16_t port,
               std::string_view branch, AskRport rport) {
  out.append("SIP/2.0/").append(transport).append(" ").append(host);
  out.append(":").append(std::to_string(port));
  appendParams(out, branch, rport);
}

}  // namespace evosip::sip
