#include <boost/json.hpp>

#include <evosip/role/set_request.hpp>

namespace evosip::role {

namespace json = boost::json;

namespace {

tl::expected<std::vector<std::string>, std::string> strings(const json::value& list,
                                                            const char* key) {
  if (!list.is_array()) {
    return tl::unexpected(std::string(key) + ": an array of strings is required");
  }
  std::vector<std::string> out;
  for (const auto& t : list.get_array()) {
    if (!t.is_string()) {
      return tl::unexpected(std::string(key) + ": every target must be a string");
    }
    out.emplace_back(t.get_string());
  }
  return out;
}

}  // namespace

tl::expected<SetRequest, std::string> parseSetRequest(const json::value& params) {
  const auto* obj = params.if_object();
  if (obj == nullptr) {
    return tl::unexpected(
        std::string("params must be an object {\"set\": ..., \"targets\": [...]}"));
  }
  SetRequest out;
  if (const auto* set = obj->if_contains("set"); set != nullptr && set->is_string()) {
    out.set = std::string(set->get_string());
  }
  const auto* targets = obj->if_contains("targets");
  if (targets == nullptr) {
    return tl::unexpected(std::string("targets: an array of targets is required"));
  }
  auto list = strings(*targets, "targets");
  if (!list) {
    return tl::unexpected(list.error());
  }
  out.targets = std::move(*list);
  if (const auto* draining = obj->if_contains("draining")) {
    auto held = strings(*draining, "draining");
    if (!held) {
      return tl::unexpected(held.error());
    }
    out.draining = std::move(*held);
  }
  return out;
}

}  // namespace evosip::role
