#pragma once
// JSON form of the stored records (the redis backend's values; also readable by operators with
// redis-cli). Times are milliseconds since the Unix epoch. Decoding never throws: malformed or
// mistyped input gives Errc::kParse naming the field.

#include <string>
#include <string_view>

#include <evosip/base/result.hpp>
#include <evosip/store/types.hpp>

namespace evosip::store {

std::string toJson(const Binding& binding);
Result<Binding> bindingFromJson(std::string_view json);

std::string toJson(const DialogRecord& dialog);
Result<DialogRecord> dialogFromJson(std::string_view json);

}  // namespace evosip::store
