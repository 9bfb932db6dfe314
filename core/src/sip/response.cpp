#include <charconv>

#include <evosip/base/strings.hpp>
#include <evosip/sip/response.hpp>

namespace evosip::sip {

std::string_view defaultReason(int code) noexcept {
  switch (code) {
    case 100:
      return "Trying";
    case 180:
      return "Ringing";
    case 181:
      return "Call Is Being Forwarded";
    case 182:
      return "Queued";
    case 183:
      return "Session Progress";
    case 199:
      return "Early Dialog Terminated";
    case 200:
      return "OK";
    case 202:
      return "Accepted";
    case 204:
      return "No Notification";
    case 300:
      return "Multiple Choices";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Moved Temporarily";
    case 305:
      return "Use Proxy";
    case 380:
      return "Alternative Service";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 402:
      return "Payment Required";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 406:
      return "Not Acceptable";
    case 407:
      return "Proxy Authentication Required";
    case 408:
      return "Request Timeout";
    case 410:
      return "Gone";
    case 412:
      return "Conditional Request Failed";
    case 413:
      return "Request Entity Too Large";
    case 414:
      return "Request-URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 416:
      return "Unsupported URI Scheme";
    case 420:
      return "Bad Extension";
    case 421:
      return "Extension Required";
    case 422:
      return "Session Interval Too Small";
    case 423:
      return "Interval Too Brief";
    case 428:
      return "Use Identity Header";
    case 429:
      return "Provide Referrer Identity";
    case 430:
      return "Flow Failed";
    case 433:
      return "Anonymity Disallowed";
    case 439:
      return "First Hop Lacks Outbound Support";
    case 440:
      return "Max-Breadth Exceeded";
    case 469:
      return "Bad Info Package";
    case 470:
      return "Consent Needed";
    case 480:
      return "Temporarily Unavailable";
    case 481:
      return "Call/Transaction Does Not Exist";
    case 482:
      return "Loop Detected";
    case 483:
      return "Too Many Hops";
    case 484:
      return "Address Incomplete";
    case 485:
      return "Ambiguous";
    case 486:
      return "Busy Here";
    case 487:
      return "Request Terminated";
    case 488:
      return "Not Acceptable Here";
    case 489:
      return "Bad Event";
    case 491:
      return "Request Pending";
    case 493:
      return "Undecipherable";
    case 494:
      return "Security Agreement Required";
    case 500:
      return "Server Internal Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Server Time-out";
    case 505:
      return "Version Not Supported";
    case 513:
      return "Message Too Large";
    case 555:
      return "Push Notification Service Not Supported";
    case 580:
      return "Precondition Failure";
    case 600:
      return "Busy Everywhere";
    case 603:
      return "Decline";
    case 604:
      return "Does Not Exist Anywhere";
    case 606:
      return "Not Acceptable";
    case 607:
      return "Unwanted";
    case 608:
      return "Rejected";
    default:
      return {};
  }
}

namespace {

std::string_view line(const Message& msg, const HeaderField& h) {
  return msg.buffer().substr(h.begin, h.end - h.begin);
}

}  // namespace

bool buildResponse(const Message& request, int code, std::string_view reason,
                   std::string_view toTag, std::string_view extraHeaders, std::string& out) {
  out.clear();
  if (!request.isRequest() || code < 100 || code > 699) {
    return false;
  }
  const HeaderField* from = request.find(HeaderId::kFrom);
  const HeaderField* to = request.find(HeaderId::kTo);
  const HeaderField* callId = request.find(HeaderId::kCallId);
  const HeaderField* cseq = request.find(HeaderId::kCSeq);
  // Without a Via there is nowhere to send a response. The other headers are copied when
  // present: a 400 for a request that lacks one of them still tells the sender why.
  if (request.find(HeaderId::kVia) == nullptr) {
    return false;
  }
  if (reason.empty()) {
    reason = defaultReason(code);
  }
  if (reason.empty()) {
    reason = code < 200 ? "Progress" : code < 300 ? "Success" : "Failure";
  }
  char digits[4];
  std::to_chars(digits, digits + 3, code);
  digits[3] = ' ';

  out.reserve(256 + extraHeaders.size());
  out.append("SIP/2.0 ").append(digits, 4).append(reason).append("\r\n");
  // Header lines are copied as written (names, compact forms and folding kept), in the order
  // RFC 3261 8.2.6.2 lists them; Via lines keep their relative order.
  for (const HeaderField& h : request.headers()) {
    if (h.id == HeaderId::kVia) {
      out.append(line(request, h));
    }
  }
  if (from != nullptr) {
    out.append(line(request, *from));
  }
  std::optional<Result<NameAddr>> toAddr;
  if (to != nullptr) {
    toAddr = parseNameAddr(to->value);
  }
  const bool addTag =
      to != nullptr && !toTag.empty() && code > 100 && !(*toAddr && (*toAddr)->tag());
  if (addTag) {
    const uint32_t valueEnd =
        static_cast<uint32_t>(to->value.data() - request.buffer().data() + to->value.size());
    out.append(request.buffer().substr(to->begin, valueEnd - to->begin));
    out.append(";tag=").append(toTag);
    out.append(request.buffer().substr(valueEnd, to->end - valueEnd));
  } else if (to != nullptr) {
    out.append(line(request, *to));
  }
  if (callId != nullptr) {
    out.append(line(request, *callId));
  }
  if (cseq != nullptr) {
    out.append(line(request, *cseq));
  }
  if (code == 100) {
    // RFC 3261 8.2.6.1: a 100 (Trying) copies the Timestamp.
    if (const HeaderField* ts = request.find(HeaderId::kTimestamp)) {
      out.append(line(request, *ts));
    }
  }
  out.append(extraHeaders);
  out.append("Content-Length: 0\r\n\r\n");
  return true;
}

namespace {

bool isContentLengthLine(std::string_view line) {
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) {
    return false;
  }
  std::string_view name = trim(line.substr(0, colon));
  return iequals(name, "content-length") || iequals(name, "l");
}

}  // namespace

std::string buildUnframedResponse(std::string_view data, int code) {
  size_t end = data.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    return {};
  }
  std::string head;
  head.reserve(end + 4);
  size_t pos = 0;
  bool first = true;
  while (pos < end + 2) {
    size_t eol = data.find("\r\n", pos);
    size_t next = eol + 2;
    while (next < end + 2 && (data[next] == ' ' || data[next] == '\t')) {
      next = data.find("\r\n", next) + 2;
    }
    std::string_view line = data.substr(pos, next - pos);
    if (first || !isContentLengthLine(line)) {
      head.append(line);
    }
    first = false;
    pos = next;
  }
  head.append("\r\n");
  auto request = Message::parse(head);
  if (!request || !request->isRequest() || request->method() == Method::kAck) {
    return {};
  }
  std::string out;
  if (!buildResponse(*request, code, defaultReason(code), "", "", out)) {
    return {};
  }
  return out;
}

}  // namespace evosip::sip
