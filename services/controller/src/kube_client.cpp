// Everything that includes Boost.Beast and Asio's OpenSSL layer in the controller lives here.

#include <cstdlib>
#include <stdexcept>

#include <boost/asio.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <fmt/format.h>

#include <evosip/base/strings.hpp>
#include <evosip/config/config.hpp>
#include <evosip/control/client.hpp>
#include <evosip/controller/kube_client.hpp>

namespace evosip::controller {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Stream = beast::ssl_stream<beast::tcp_stream>;

namespace {

constexpr auto kAwaitTuple = asio::as_tuple(asio::use_awaitable);
constexpr size_t kMaxHeaderBytes = 64 * 1024;
constexpr size_t kReadChunk = 16 * 1024;

tl::unexpected<Error> failure(std::string_view step, const boost::system::error_code& ec) {
  const Errc code = ec == beast::error::timeout ? Errc::kTimeout : Errc::kUnavailable;
  return makeError(code, fmt::format("{}: {}", step, ec.message()));
}

// The token as the file holds it now ("" when it cannot be read: the API server answers 401).
std::string readToken(const std::string& file) {
  if (file.empty()) {
    return {};
  }
  try {
    return config::readSecret("file:" + file);
  } catch (const config::ConfigError&) {
    return {};
  }
}

bool isIpAddress(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

}  // namespace

KubeSettings kubeEndpoint(const std::string& api) {
  std::string text = api;
  if (text.empty()) {
    const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
    const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
    if (host == nullptr || port == nullptr) {
      throw std::runtime_error(
          "controller.kubernetes.api: not set and KUBERNETES_SERVICE_HOST/_PORT are not in the "
          "environment (not running in a cluster)");
    }
    const std::string h = host;
    text = (h.find(':') != std::string::npos ? "[" + h + "]" : h) + ":" + port;
  }
  if (text.rfind("https://", 0) == 0) {
    text = text.substr(8);
  }
  while (!text.empty() && text.back() == '/') {
    text.pop_back();
  }
  auto hp = control::splitHostPort(text);
  if (!hp) {
    throw std::runtime_error("controller.kubernetes.api: '" + api + "': " + hp.error());
  }
  KubeSettings s;
  s.host = hp->host;
  s.port = hp->port;
  return s;
}

struct KubeClient::Impl {
  asio::io_context& io;
  KubeSettings settings;
  ssl::context tls{ssl::context::tls_client};

  // A connected, verified TLS stream; each operation on it expires after `timeout`.
  asio::awaitable<Result<std::unique_ptr<Stream>>> connect(std::chrono::milliseconds timeout);
  http::request<http::string_body> makeRequest(const std::string& method, const std::string& target,
                                               std::string body) const;
};

asio::awaitable<Result<std::unique_ptr<Stream>>> KubeClient::Impl::connect(
    std::chrono::milliseconds timeout) {
  tcp::resolver resolver(io);
  auto [rec, endpoints] =
      co_await resolver.async_resolve(settings.host, settings.port, kAwaitTuple);
  if (rec) {
    co_return failure("resolve " + settings.host, rec);
  }
  auto stream = std::make_unique<Stream>(io, tls);
  beast::get_lowest_layer(*stream).expires_after(std::min(timeout, settings.connectTimeout));
  auto [cec, ep] = co_await beast::get_lowest_layer(*stream).async_connect(endpoints, kAwaitTuple);
  if (cec) {
    co_return failure("connect " + settings.host + ":" + settings.port, cec);
  }
  if (!isIpAddress(settings.host)) {
    SSL_set_tlsext_host_name(stream->native_handle(), settings.host.c_str());
  }
  stream->set_verify_mode(ssl::verify_peer);
  stream->set_verify_callback(ssl::host_name_verification(settings.host));
  auto [hec] = co_await stream->async_handshake(ssl::stream_base::client, kAwaitTuple);
  if (hec) {
    co_return failure("TLS handshake", hec);
  }
  beast::get_lowest_layer(*stream).expires_after(timeout);
  co_return std::move(stream);
}

http::request<http::string_body> KubeClient::Impl::makeRequest(const std::string& method,
                                                               const std::string& target,
                                                               std::string body) const {
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, settings.host);
  req.set(http::field::user_agent, "evosip-controller");
  req.set(http::field::accept, "application/json");
  if (const std::string token = readToken(settings.tokenFile); !token.empty()) {
    req.set(http::field::authorization, "Bearer " + token);
  }
  if (!body.empty()) {
    req.set(http::field::content_type,
            method == "PATCH" ? "application/merge-patch+json" : "application/json");
  }
  req.body() = std::move(body);
  req.prepare_payload();
  return req;
}

KubeClient::KubeClient(asio::io_context& io, KubeSettings settings)
    : impl_(std::make_unique<Impl>(Impl{io, std::move(settings)})) {
  boost::system::error_code ec;
  if (impl_->settings.caFile.empty()) {
    impl_->tls.set_default_verify_paths(ec);
  } else {
    impl_->tls.load_verify_file(impl_->settings.caFile, ec);
  }
  if (ec) {
    throw std::runtime_error("controller.kubernetes.ca_file: '" + impl_->settings.caFile +
                             "': " + ec.message());
  }
}

KubeClient::~KubeClient() = default;

asio::awaitable<Result<KubeResponse>> KubeClient::request(std::string method, std::string target,
                                                          std::string body,
                                                          std::chrono::milliseconds timeout,
                                                          size_t maxBody) {
  auto stream = co_await impl_->connect(timeout);
  if (!stream) {
    co_return tl::unexpected(stream.error());
  }
  auto req = impl_->makeRequest(method, target, std::move(body));
  auto [wec, wn] = co_await http::async_write(**stream, req, kAwaitTuple);
  if (wec) {
    co_return failure("send " + method, wec);
  }
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.header_limit(kMaxHeaderBytes);
  parser.body_limit(maxBody);
  auto [rec, rn] = co_await http::async_read(**stream, buffer, parser, kAwaitTuple);
  if (rec) {
    co_return failure("read the answer to " + method, rec);
  }
  beast::get_lowest_layer(**stream).close();
  KubeResponse answer;
  answer.status = parser.get().result_int();
  answer.body = std::move(parser.get().body());
  co_return answer;
}

namespace {

// Reads the rest of a non-200 watch answer (a Status object) into a string.
asio::awaitable<std::string> readErrorBody(Stream& stream, beast::flat_buffer& buffer,
                                           http::response_parser<http::buffer_body>& head) {
  http::response_parser<http::string_body> parser(std::move(head));
  parser.body_limit(64 * 1024);
  auto [ec, n] = co_await http::async_read(stream, buffer, parser, kAwaitTuple);
  co_return ec ? std::string() : std::move(parser.get().body());
}

// Splits received bytes into lines; false when a line is too long or the handler stops.
bool feedLines(std::string& pending, std::string_view bytes, size_t maxLine,
               const KubeClient::LineHandler& onLine) {
  pending.append(bytes);
  size_t start = 0;
  for (size_t nl = pending.find('\n'); nl != std::string::npos; nl = pending.find('\n', start)) {
    std::string_view line(pending.data() + start, nl - start);
    start = nl + 1;
    if (!trim(line).empty() && !onLine(line)) {
      return false;
    }
  }
  pending.erase(0, start);
  return pending.size() <= maxLine;
}

}  // namespace

asio::awaitable<Result<KubeResponse>> KubeClient::watch(std::string target,
                                                        std::chrono::milliseconds idle,
                                                        size_t maxLine, LineHandler onLine) {
  auto stream = co_await impl_->connect(idle);
  if (!stream) {
    co_return tl::unexpected(stream.error());
  }
  auto req = impl_->makeRequest("GET", target, "");
  auto [wec, wn] = co_await http::async_write(**stream, req, kAwaitTuple);
  if (wec) {
    co_return failure("send the watch", wec);
  }
  beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;
  parser.header_limit(kMaxHeaderBytes);
  parser.body_limit(boost::none);
  auto [hec, hn] = co_await http::async_read_header(**stream, buffer, parser, kAwaitTuple);
  if (hec) {
    co_return failure("read the watch answer", hec);
  }
  const unsigned status = parser.get().result_int();
  if (status != 200) {
    // (a named result: GCC 12 destroys a co_await inside a braced initialiser twice)
    KubeResponse answer;
    answer.status = status;
    answer.body = co_await readErrorBody(**stream, buffer, parser);
    co_return answer;
  }
  std::string pending;
  char chunk[kReadChunk];
  while (!parser.is_done()) {
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof(chunk);
    beast::get_lowest_layer(**stream).expires_after(idle);
    auto [ec, n] = co_await http::async_read_some(**stream, buffer, parser, kAwaitTuple);
    if (ec && ec != http::error::need_buffer) {
      co_return failure("watch stream", ec);
    }
    const size_t got = sizeof(chunk) - parser.get().body().size;
    if (!feedLines(pending, std::string_view(chunk, got), maxLine, onLine)) {
      co_return makeError(Errc::kTooLarge, "watch stream: a line too long, or stopped");
    }
  }
  KubeResponse done;
  done.status = status;
  co_return done;
}

}  // namespace evosip::controller
