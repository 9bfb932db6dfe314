#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include <evosip/base/strings.hpp>
#include <evosip/config/config.hpp>

namespace evosip::config {

namespace {

constexpr std::string_view kInlineSource = "<inline configuration>";

std::optional<std::string> processEnv(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  if (value == nullptr) {
    return std::nullopt;
  }
  return std::string(value);
}

std::vector<std::string> splitPath(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    parts.push_back(path.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) {
      break;
    }
    start = dot + 1;
  }
  return parts;
}

std::string joinPath(const std::string& prefix, const std::string& key) {
  return prefix.empty() ? key : prefix + "." + key;
}

std::string lineOf(const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  if (mark.is_null()) {
    return "";
  }
  return fmt::format(" line {}", mark.line + 1);
}

// Bounds of a configuration's tree. Aliases let a few lines describe a tree that is endless (an
// alias inside its own anchor) or exponentially large; every later walk relies on these bounds.
constexpr int kMaxDepth = 64;
constexpr size_t kMaxNodes = 100000;

// Rejects what yaml-cpp accepts silently: a key given twice (the second would be ignored), keys
// that are not plain scalars, and trees deeper or larger than the bounds above.
void checkStructure(const YAML::Node& node, const std::string& prefix, const std::string& source,
                    int depth, size_t& nodes) {
  if (depth > kMaxDepth) {
    const std::string where = prefix.size() > 80 ? prefix.substr(0, 80) + "..." : prefix;
    throw ConfigError(fmt::format(
        "configuration nested more than {} levels under '{}' (an alias inside its own anchor?)",
        kMaxDepth, where.empty() ? "<top level>" : where));
  }
  if (++nodes > kMaxNodes) {
    throw ConfigError(
        fmt::format("configuration has more than {} values (aliases that expand "
                    "to too much?) ({}{})",
                    kMaxNodes, source, lineOf(node)));
  }
  if (node.IsSequence()) {
    for (const YAML::Node& item : node) {
      checkStructure(item, prefix, source, depth + 1, nodes);
    }
    return;
  }
  if (!node.IsMap()) {
    return;
  }
  std::set<std::string> seen;
  for (const auto& entry : node) {
    const YAML::Node& key = entry.first;
    if (!key.IsScalar()) {
      throw ConfigError(fmt::format("configuration key under '{}' is not a plain name ({}{})",
                                    prefix.empty() ? "<top level>" : prefix, source, lineOf(key)));
    }
    std::string path = joinPath(prefix, key.Scalar());
    if (!seen.insert(key.Scalar()).second) {
      throw ConfigError(
          fmt::format("duplicate configuration key '{}' ({}{})", path, source, lineOf(key)));
    }
    checkStructure(entry.second, path, source, depth + 1, nodes);
  }
}

// Parses text; label names it in errors ("configuration file 'edge.yaml'").
YAML::Node parseYaml(const std::string& text, const std::string& label, const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    throw ConfigError(fmt::format("{} line {}: {}", label, e.mark.line + 1, e.msg));
  } catch (const YAML::Exception& e) {
    throw ConfigError(fmt::format("{}: {}", label, e.what()));
  }
  if (root.IsDefined() && !root.IsNull() && !root.IsMap()) {
    throw ConfigError(fmt::format("{}: the top level must be a map of keys", label));
  }
  size_t nodes = 0;
  checkStructure(root, "", source, 0, nodes);
  return root;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = asciiLower(c);
  }
  return out;
}

}  // namespace

struct Document::Raw {
  std::optional<std::string> text;  // set when the value comes from the environment
  YAML::Node node;                  // set when it comes from the YAML
  std::string origin;               // "EVOSIP_EDGE_ROUTERS" or "edge.yaml line 7"
};

Document::Document() : root_(YAML::NodeType::Map), source_(kInlineSource), getenv_(processEnv) {}

Document Document::loadFile(const std::string& path) {
  if (path.empty()) {
    return Document();
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw ConfigError(
        fmt::format("cannot read configuration file '{}': {}", path, std::strerror(errno)));
  }
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) {
    throw ConfigError(fmt::format("cannot read configuration file '{}'", path));
  }
  Document doc;
  doc.source_ = path;
  YAML::Node root = parseYaml(content.str(), fmt::format("configuration file '{}'", path), path);
  if (root.IsMap()) {
    doc.root_.reset(root);
  }
  return doc;
}

Document Document::fromString(const std::string& yaml) {
  Document doc;
  YAML::Node root = parseYaml(yaml, std::string(kInlineSource), std::string(kInlineSource));
  if (root.IsMap()) {
    doc.root_.reset(root);
  }
  return doc;
}

void Document::setEnvironment(Getenv getenv) {
  getenv_ = std::move(getenv);
}

std::string Document::envName(const std::string& path) {
  std::string name = "EVOSIP_";
  for (char c : path) {
    if (c >= 'a' && c <= 'z') {
      name.push_back(static_cast<char>(c - 'a' + 'A'));
    } else if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
      name.push_back(c);
    } else {
      name.push_back('_');
    }
  }
  return name;
}

std::optional<YAML::Node> Document::findNode(const std::string& path) const {
  YAML::Node current(root_);
  for (const std::string& part : splitPath(path)) {
    if (!current.IsMap()) {
      return std::nullopt;
    }
    const YAML::Node& map = current;  // the const operator[] does not insert the key
    YAML::Node next = map[part];
    if (!next.IsDefined()) {
      return std::nullopt;
    }
    current.reset(next);  // YAML::Node's operator= would overwrite the content, not rebind
  }
  return current;
}

std::string Document::where(const YAML::Node& node) const {
  return source_ + lineOf(node);
}

std::optional<Document::Raw> Document::lookup(const std::string& path) const {
  read_.insert(path);
  std::string env = envName(path);
  if (getenv_) {
    if (std::optional<std::string> value = getenv_(env)) {
      return Raw{std::move(*value), YAML::Node(), env};
    }
  }
  std::optional<YAML::Node> node = findNode(path);
  if (!node || node->IsNull()) {
    return std::nullopt;
  }
  return Raw{std::nullopt, *node, where(*node)};
}

namespace {

[[noreturn]] void badValue(const std::string& path, std::string_view value, std::string_view what,
                           const std::string& origin) {
  throw ConfigError(fmt::format("{}: '{}' {} (from {})", path, value, what, origin));
}

// The single text value of raw, or a ConfigError when the YAML has a list or map there.
std::string scalarOf(const std::string& path, const std::optional<std::string>& text,
                     const YAML::Node& node, const std::string& origin) {
  if (text) {
    return *text;
  }
  if (node.IsScalar()) {
    return node.Scalar();
  }
  throw ConfigError(fmt::format("{}: expected a single value, found a {} (from {})", path,
                                node.IsSequence() ? "list" : "map", origin));
}

}  // namespace

std::string Document::getString(const std::string& path, const std::string& def) {
  std::optional<Raw> raw = lookup(path);
  if (!raw) {
    return def;
  }
  return scalarOf(path, raw->text, raw->node, raw->origin);
}

int64_t Document::getInt(const std::string& path, int64_t def, int64_t min, int64_t max) {
  std::optional<Raw> raw = lookup(path);
  if (!raw) {
    return def;
  }
  const std::string text = scalarOf(path, raw->text, raw->node, raw->origin);
  std::string_view digits = trim(text);
  if (digits.size() > 1 && digits.front() == '+') {
    digits.remove_prefix(1);
  }
  int64_t value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec == std::errc::result_out_of_range) {
    badValue(path, text, fmt::format("is out of range (allowed {}..{})", min, max), raw->origin);
  }
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size()) {
    badValue(path, text, "is not an integer", raw->origin);
  }
  if (value < min || value > max) {
    badValue(path, text, fmt::format("is out of range (allowed {}..{})", min, max), raw->origin);
  }
  return value;
}

bool Document::getBool(const std::string& path, bool def) {
  std::optional<Raw> raw = lookup(path);
  if (!raw) {
    return def;
  }
  const std::string text = scalarOf(path, raw->text, raw->node, raw->origin);
  const std::string word = lower(trim(text));
  if (word == "true" || word == "yes" || word == "1") {
    return true;
  }
  if (word == "false" || word == "no" || word == "0") {
    return false;
  }
  badValue(path, text, "is not a boolean (use true/false, yes/no or 1/0)", raw->origin);
}

double Document::getDouble(const std::string& path, double def, double min, double max) {
  std::optional<Raw> raw = lookup(path);
  if (!raw) {
    return def;
  }
  const std::string text = scalarOf(path, raw->text, raw->node, raw->origin);
  std::string_view digits = trim(text);
  if (digits.size() > 1 && digits.front() == '+') {
    digits.remove_prefix(1);
  }
  double value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value,
                                   std::chars_format::general);
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() ||
      !std::isfinite(value)) {
    badValue(path, text, "is not a number", raw->origin);
  }
  if (value < min || value > max) {
    badValue(path, text, fmt::format("is out of range (allowed {}..{})", min, max), raw->origin);
  }
  return value;
}

std::vector<std::string> Document::getList(const std::string& path,
                                           const std::vector<std::string>& def) {
  std::optional<Raw> raw = lookup(path);
  if (!raw) {
    return def;
  }
  std::vector<std::string> items;
  if (raw->text) {
    std::string_view rest = *raw->text;
    while (!rest.empty()) {
      size_t comma = rest.find(',');
      std::string_view item = trim(rest.substr(0, comma));
      if (!item.empty()) {
        items.emplace_back(item);
      }
      if (comma == std::string_view::npos) {
        break;
      }
      rest.remove_prefix(comma + 1);
    }
    return items;
  }
  const YAML::Node& node = raw->node;
  if (node.IsScalar()) {
    if (!node.Scalar().empty()) {
      items.push_back(node.Scalar());
    }
    return items;
  }
  if (!node.IsSequence()) {
    throw ConfigError(fmt::format("{}: expected a list, found a map (from {})", path, raw->origin));
  }
  size_t index = 0;
  for (const YAML::Node& item : node) {
    ++index;
    if (!item.IsScalar()) {
      throw ConfigError(
          fmt::format("{}: item {} is not a single value (from {})", path, index, where(item)));
    }
    items.push_back(item.Scalar());
  }
  return items;
}

bool Document::has(const std::string& path) const {
  read_.insert(path);
  if (getenv_ && getenv_(envName(path))) {
    return true;
  }
  return findNode(path).has_value();
}

std::vector<std::string> Document::childKeys(const std::string& path) const {
  read_.insert(path);
  std::vector<std::string> keys;
  std::optional<YAML::Node> node = findNode(path);
  if (!node || node->IsNull()) {
    return keys;
  }
  if (!node->IsMap()) {
    throw ConfigError(fmt::format("{}: expected a map of keys (from {})", path, where(*node)));
  }
  for (const auto& entry : *node) {
    keys.push_back(entry.first.Scalar());
    known_.insert(joinPath(path, entry.first.Scalar()));
  }
  return keys;
}

void Document::checkUnknownKeys() const {
  auto isKnown = [this](const std::string& path) {
    if (read_.count(path) != 0 || known_.count(path) != 0) {
      return true;
    }
    const std::string prefix = path + ".";
    auto it = read_.lower_bound(prefix);
    return it != read_.end() && it->compare(0, prefix.size(), prefix) == 0;
  };
  std::function<void(const YAML::Node&, const std::string&)> walk = [&](const YAML::Node& map,
                                                                        const std::string& prefix) {
    for (const auto& entry : map) {
      const std::string path = joinPath(prefix, entry.first.Scalar());
      if (!isKnown(path)) {
        throw ConfigError(
            fmt::format("unknown configuration key '{}' ({})", path, where(entry.first)));
      }
      if (entry.second.IsMap()) {
        walk(entry.second, path);
      }
    }
  };
  if (root_.IsMap()) {
    walk(root_, "");
  }
}

std::string readSecret(const std::string& valueOrFileRef) {
  constexpr std::string_view kFilePrefix = "file:";
  if (valueOrFileRef.compare(0, kFilePrefix.size(), kFilePrefix) != 0) {
    return valueOrFileRef;
  }
  const std::string path = valueOrFileRef.substr(kFilePrefix.size());
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw ConfigError(fmt::format("cannot read secret file '{}': {}", path, std::strerror(errno)));
  }
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) {
    throw ConfigError(fmt::format("cannot read secret file '{}'", path));
  }
  return std::string(trim(content.str()));
}

}  // namespace evosip::config
