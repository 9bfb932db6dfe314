#include <evosip/sip/method.hpp>

namespace evosip::sip {

Method methodFromName(std::string_view name) noexcept {
  switch (name.size()) {
    case 3:
      if (name == "ACK") {
        return Method::kAck;
      }
      if (name == "BYE") {
        return Method::kBye;
      }
      break;
    case 4:
      if (name == "INFO") {
        return Method::kInfo;
      }
      break;
    case 5:
      if (name == "PRACK") {
        return Method::kPrack;
      }
      if (name == "REFER") {
        return Method::kRefer;
      }
      break;
    case 6:
      if (name == "INVITE") {
        return Method::kInvite;
      }
      if (name == "CANCEL") {
        return Method::kCancel;
      }
      if (name == "UPDATE") {
        return Method::kUpdate;
      }
      if (name == "NOTIFY") {
        return Method::kNotify;
      }
      break;
    case 7:
      if (name == "OPTIONS") {
        return Method::kOptions;
      }
      if (name == "MESSAGE") {
        return Method::kMessage;
      }
      if (name == "PUBLISH") {
        return Method::kPublish;
      }
      break;
    case 8:
      if (name == "REGISTER") {
        return Method::kRegister;
      }
      break;
    case 9:
      if (name == "SUBSCRIBE") {
        return Method::kSubscribe;
      }
      break;
    default:
      break;
  }
  return Method::kOther;
}

std::string_view methodName(Method m) noexcept {
  switch (m) {
    case Method::kInvite:
      return "INVITE";
    case Method::kAck:
      return "ACK";
    case Method::kBye:
      return "BYE";
    case Method::kCancel:
      return "CANCEL";
    case Method::kRegister:
      return "REGISTER";
    case Method::kOptions:
      return "OPTIONS";
    case Method::kInfo:
      return "INFO";
    case Method::kUpdate:
      return "UPDATE";
    case Method::kPrack:
      return "PRACK";
    case Method::kSubscribe:
      return "SUBSCRIBE";
    case Method::kNotify:
      return "NOTIFY";
    case Method::kRefer:
      return "REFER";
    case Method::kMessage:
      return "MESSAGE";
    case Method::kPublish:
      return "PUBLISH";
    case Method::kOther:
      break;
  }
  return {};
}

}  // namespace evosip::sip
