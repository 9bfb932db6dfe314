#pragma once
// Role configuration: one YAML file, every key overridable by an environment variable
// (DESIGN.md section 5). Only the wiring layer reads a Document; core classes take Settings.
//
// Paths are dotted ("edge.rate_limit.requests_per_second"). Each get* first looks at
// EVOSIP_<PATH> (upper-cased, '.' -> '_'), then the YAML file, then the default. Bad values and
// unknown keys throw ConfigError with one line naming the key and where the value came from.
//
// A Document records which keys were read so that checkUnknownKeys() can reject typos; it is
// meant to be used by one thread during start-up.

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

namespace evosip::config {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Document {
 public:
  using Getenv = std::function<std::optional<std::string>(const std::string&)>;

  // An empty document (every get* returns its default unless the environment overrides it).
  Document();

  // "" -> empty document. A missing, unreadable or unparsable file throws ConfigError naming the
  // file (and the line for YAML errors). The top level must be a map.
  static Document loadFile(const std::string& path);
  // The same rules for YAML given inline; errors name "<inline configuration>".
  static Document fromString(const std::string& yaml);

  // Replaces the environment lookup (default: ::getenv). Tests inject a map.
  void setEnvironment(Getenv getenv);

  std::string getString(const std::string& path, const std::string& def);
  int64_t getInt(const std::string& path, int64_t def, int64_t min, int64_t max);
  bool getBool(const std::string& path, bool def);
  double getDouble(const std::string& path, double def, double min, double max);
  // YAML: a sequence of scalars, or one scalar as a one-element list. Environment: comma-separated,
  // items trimmed, empty items dropped, "" -> empty list.
  std::vector<std::string> getList(const std::string& path, const std::vector<std::string>& def);

  // True when the YAML has the key or its environment variable is set.
  bool has(const std::string& path) const;
  // Keys of the map at path, in file order; empty when absent. Marks the keys as known.
  std::vector<std::string> childKeys(const std::string& path) const;

  // Throws ConfigError "unknown configuration key 'edge.rooters' (<file> line 7)" for the first
  // YAML key (leaf or map) that no get*/has/childKeys call read.
  void checkUnknownKeys() const;

  // The environment variable that overrides path: "edge.routers" -> "EVOSIP_EDGE_ROUTERS".
  static std::string envName(const std::string& path);

 private:
  struct Raw;  // a value found for a path: its text or node, and where it came from
  std::optional<Raw> lookup(const std::string& path) const;
  std::optional<YAML::Node> findNode(const std::string& path) const;
  std::string where(const YAML::Node& node) const;

  YAML::Node root_;
  std::string source_;  // file name or "<inline configuration>"
  Getenv getenv_;
  mutable std::set<std::string> read_;   // paths read by get*/has/childKeys
  mutable std::set<std::string> known_;  // keys enumerated by childKeys
};

// Secrets come from files or the environment: "file:/run/secrets/token" returns the file's
// content without surrounding whitespace (ConfigError naming the file when it cannot be read);
// any other value is returned as it is.
std::string readSecret(const std::string& valueOrFileRef);

}  // namespace evosip::config
