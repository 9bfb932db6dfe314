#include <evosip/bencode/bencode.hpp>

namespace evosip::bencode {

namespace {

const Value::List kEmptyList;
const Value::Dict kEmptyDict;

}  // namespace

Value::Value() : v_(int64_t{0}) {}
Value::Value(int64_t v) : v_(v) {}
Value::Value(std::string v) : v_(std::move(v)) {}
Value::Value(std::string_view v) : v_(std::string(v)) {}
Value::Value(const char* v) : v_(std::string(v != nullptr ? v : "")) {}
Value::Value(List v) : v_(std::move(v)) {}
Value::Value(Dict v) : v_(std::move(v)) {}

Value Value::makeList() {
  return Value(List{});
}
Value Value::makeDict() {
  return Value(Dict{});
}

Type Value::type() const {
  return static_cast<Type>(v_.index());
}

int64_t Value::asInteger() const {
  const auto* p = std::get_if<int64_t>(&v_);
  return p != nullptr ? *p : 0;
}

std::string_view Value::asString() const {
  const auto* p = std::get_if<std::string>(&v_);
  return p != nullptr ? std::string_view(*p) : std::string_view();
}

const Value::List& Value::asList() const {
  const auto* p = std::get_if<List>(&v_);
  return p != nullptr ? *p : kEmptyList;
}

const Value::Dict& Value::asDict() const {
  const auto* p = std::get_if<Dict>(&v_);
  return p != nullptr ? *p : kEmptyDict;
}

const Value* Value::find(std::string_view key) const {
  for (const auto& e : asDict()) {
    if (e.key == key) {
      return &e.value;
    }
  }
  return nullptr;
}

std::optional<std::string_view> Value::string(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr || !v->isString()) {
    return std::nullopt;
  }
  return v->asString();
}

std::optional<int64_t> Value::integer(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr || !v->isInteger()) {
    return std::nullopt;
  }
  return v->asInteger();
}

std::vector<std::string_view> Value::stringList(std::string_view key) const {
  std::vector<std::string_view> out;
  const Value* v = find(key);
  if (v == nullptr) {
    return out;
  }
  if (v->isString()) {
    out.push_back(v->asString());
    return out;
  }
  for (const auto& e : v->asList()) {
    if (e.isString()) {
      out.push_back(e.asString());
    }
  }
  return out;
}

bool Value::containsString(std::string_view key, std::string_view value) const {
  const Value* v = find(key);
  if (v == nullptr) {
    return false;
  }
  if (v->isString()) {
    return v->asString() == value;
  }
  for (const auto& e : v->asList()) {
    if (e.isString() && e.asString() == value) {
      return true;
    }
  }
  return false;
}

Value::List& Value::mutableList() {
  if (!isList()) {
    v_ = List{};
  }
  return std::get<List>(v_);
}

Value::Dict& Value::mutableDict() {
  if (!isDict()) {
    v_ = Dict{};
  }
  return std::get<Dict>(v_);
}

Value& Value::set(std::string_view key, Value v) {
  Dict& d = mutableDict();
  for (auto& e : d) {
    if (e.key == key) {
      e.value = std::move(v);
      return *this;
    }
  }
  d.push_back(DictEntry{std::string(key), std::move(v)});
  return *this;
}

Value& Value::add(Value v) {
  mutableList().push_back(std::move(v));
  return *this;
}

bool operator==(const Value& a, const Value& b) {
  return a.v_ == b.v_;
}

}  // namespace evosip::bencode
