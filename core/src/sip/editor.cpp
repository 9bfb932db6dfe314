#include <algorithm>
#include <charconv>

#include <evosip/base/assert.hpp>
#include <evosip/sip/editor.hpp>
#include <evosip/sip/params.hpp>

namespace evosip::sip {

namespace {

uint32_t offsetOf(const Message& msg, std::string_view view) {
  return static_cast<uint32_t>(view.data() - msg.buffer().data());
}

}  // namespace

uint32_t MessageEditor::addText(std::string_view a, std::string_view b, std::string_view c,
                                std::string_view d) {
  const auto begin = static_cast<uint32_t>(text_.size());
  for (std::string_view part : {a, b, c, d}) {
    text_.insert(text_.end(), part.begin(), part.end());
  }
  return begin;
}

void MessageEditor::addEdit(uint32_t begin, uint32_t end, uint32_t textBegin, uint32_t textLen) {
  EVOSIP_ASSERT(begin <= end && end <= msg_.size() && begin >= msg_.startOffset(),
                "edit outside the message");
  const Edit e{begin, end, textBegin, textLen, static_cast<uint32_t>(edits_.size())};
  // Keep edits sorted by offset. At the same offset, insertions come before a replaced range
  // and stay in the order they were made.
  auto before = [](const Edit& x, const Edit& y) {
    return x.begin < y.begin || (x.begin == y.begin && x.begin == x.end && y.begin != y.end);
  };
  auto it = std::upper_bound(edits_.begin(), edits_.end(), e, before);
  EVOSIP_ASSERT(it == edits_.begin() || std::prev(it)->end <= begin, "overlapping edits");
  EVOSIP_ASSERT(it == edits_.end() || end <= it->begin, "overlapping edits");
  edits_.insert(it, e);
}

void MessageEditor::prependHeader(std::string_view name, std::string_view value) {
  const uint32_t at = msg_.headersBegin();
  const uint32_t t = addText(name, ": ", value, "\r\n");
  addEdit(at, at, t, static_cast<uint32_t>(text_.size()) - t);
}

void MessageEditor::appendHeader(std::string_view name, std::string_view value) {
  const uint32_t at = msg_.headersEnd();
  const uint32_t t = addText(name, ": ", value, "\r\n");
  addEdit(at, at, t, static_cast<uint32_t>(text_.size()) - t);
}

void MessageEditor::insertHeaderBefore(const HeaderField& at, std::string_view name,
                                       std::string_view value) {
  const uint32_t t = addText(name, ": ", value, "\r\n");
  addEdit(at.begin, at.begin, t, static_cast<uint32_t>(text_.size()) - t);
}

void MessageEditor::removeHeader(const HeaderField& h) {
  addEdit(h.begin, h.end, 0, 0);
}

void MessageEditor::removeFirstValue(const HeaderField& h) {
  ValueSplitter split(h.value);
  auto first = split.next();
  auto second = split.next();
  if (!first || !second) {
    removeHeader(h);
    return;
  }
  // From the start of the first value to the start of the second: the comma and any folding
  // between them go too, so "Via: a,\r\n b" becomes "Via: b".
  addEdit(offsetOf(msg_, *first), offsetOf(msg_, *second), 0, 0);
}

void MessageEditor::replaceValue(const HeaderField& h, std::string_view value) {
  const uint32_t begin = offsetOf(msg_, h.value);
  replaceRange(begin, begin + static_cast<uint32_t>(h.value.size()), value);
}

void MessageEditor::replaceRequestUri(std::string_view uri) {
  EVOSIP_ASSERT(msg_.isRequest(), "replaceRequestUri on a response");
  const uint32_t begin = msg_.requestUriOffset();
  replaceRange(begin, begin + static_cast<uint32_t>(msg_.requestUri().size()), uri);
}

void MessageEditor::insertAt(uint32_t offset, std::string_view text) {
  replaceRange(offset, offset, text);
}

void MessageEditor::replaceRange(uint32_t begin, uint32_t end, std::string_view text) {
  const uint32_t t = addText(text);
  addEdit(begin, end, t, static_cast<uint32_t>(text.size()));
}

void MessageEditor::replaceBody(std::string_view body, std::string_view contentType) {
  EVOSIP_ASSERT(!bodyReplaced_, "replaceBody called twice");
  bodyReplaced_ = true;
  const uint32_t begin = msg_.bodyOffset();
  replaceRange(begin, begin + static_cast<uint32_t>(msg_.body().size()), body);

  char digits[16];
  auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), body.size());
  const std::string_view length(digits, static_cast<size_t>(end - digits));
  if (const HeaderField* cl = msg_.find(HeaderId::kContentLength)) {
    replaceValue(*cl, length);
  } else {
    appendHeader("Content-Length", length);
  }
  const HeaderField* ct = msg_.find(HeaderId::kContentType);
  if (!contentType.empty()) {
    if (ct != nullptr) {
      replaceValue(*ct, contentType);
    } else {
      appendHeader("Content-Type", contentType);
    }
  } else if (body.empty() && ct != nullptr) {
    removeHeader(*ct);  // no body, no type
  }
}

size_t MessageEditor::size() const {
  size_t n = msg_.size() - msg_.startOffset();
  for (const Edit& e : edits_) {
    n = n - (e.end - e.begin) + e.textLen;
  }
  return n;
}

void MessageEditor::writeTo(std::string& out) const {
  out.clear();
  out.reserve(size());
  const std::string_view buf = msg_.buffer();
  size_t pos = msg_.startOffset();
  for (const Edit& e : edits_) {
    if (e.begin >= pos) {
      out.append(buf.substr(pos, e.begin - pos));
    }
    out.append(text_.data() + e.textBegin, e.textLen);
    pos = std::max<size_t>(pos, e.end);
  }
  out.append(buf.substr(pos, msg_.size() - pos));
}

std::string MessageEditor::str() const {
  std::string out;
  writeTo(out);
  return out;
}

}  // namespace evosip::sip
