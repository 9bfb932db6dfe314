#pragma once
// Emits a modified copy of a parsed message by splicing: untouched bytes are copied as they
// are, only the edited ranges change. Used on the forwarding path: add/remove a Via, pop a
// Route, insert Record-Route/Path, remove headers, add received/rport.

#include <cstdint>
#include <string>
#include <string_view>

#include <boost/container/small_vector.hpp>

#include <evosip/sip/message.hpp>

namespace evosip::sip {

class MessageEditor {
 public:
  explicit MessageEditor(const Message& msg) : msg_(msg) {}

  // Inserts a header line "Name: value\r\n" before all other headers (Via, Record-Route go
  // first so that they precede the existing ones of the same name).
  void prependHeader(std::string_view name, std::string_view value);
  // Inserts a header line after the last header (before the blank line).
  void appendHeader(std::string_view name, std::string_view value);
  // Inserts a header line just before `at`.
  void insertHeaderBefore(const HeaderField& at, std::string_view name, std::string_view value);
  // Removes the whole header line (with folded continuation lines).
  void removeHeader(const HeaderField& h);
  // Removes the first comma-separated value of `h` (e.g. the top Via, the top Route); removes
  // the whole line when it had a single value.
  void removeFirstValue(const HeaderField& h);
  // Replaces the value of `h` (name kept as written).
  void replaceValue(const HeaderField& h, std::string_view value);
  void replaceRequestUri(std::string_view uri);
  // Inserts `text` at a buffer offset (e.g. ";received=1.2.3.4" after the top Via's value).
  void insertAt(uint32_t offset, std::string_view text);
  // Replaces bytes [begin, end) of the buffer.
  void replaceRange(uint32_t begin, uint32_t end, std::string_view text);
  // Replaces the body; Content-Length is rewritten (or added) to match.
  void replaceBody(std::string_view body, std::string_view contentType = {});

  // Size of the result, and the result itself. Edits may be given in any order; edits on
  // overlapping ranges are a programming error (EVOSIP_ASSERT). Returns bytes written.
  size_t size() const;
  void writeTo(std::string& out) const;  // out is cleared first
  std::string str() const;

 private:
  struct Edit {
    uint32_t begin;
    uint32_t end;
    uint32_t textBegin;  // into text_
    uint32_t textLen;
    uint32_t seq;  // insertion order for edits at the same offset
  };
  uint32_t addText(std::string_view a, std::string_view b = {}, std::string_view c = {},
                   std::string_view d = {});
  void addEdit(uint32_t begin, uint32_t end, uint32_t textBegin, uint32_t textLen);

  const Message& msg_;
  // Inserted text; inline for the few hundred bytes a proxy adds, so editing does not allocate.
  boost::container::small_vector<char, 320> text_;
  boost::container::small_vector<Edit, 8> edits_;
  bool bodyReplaced_ = false;
};

}  // namespace evosip::sip
