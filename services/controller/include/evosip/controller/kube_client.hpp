#pragma once
// A client of the Kubernetes API server over HTTPS (Boost.Beast + OpenSSL): one request per TLS
// connection, the server's certificate verified against the cluster CA and the server's name or
// IP address, the service-account bearer token read from its file for every request (a rotated
// token is used at once). Runs as coroutines on one io_context; errors are returned, never
// thrown.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include <evosip/base/result.hpp>

namespace evosip::controller {

struct KubeSettings {
  std::string host;  // without brackets
  std::string port;
  std::string tokenFile;  // "" = no Authorization header
  std::string caFile;     // "" = the system's trust store
  std::chrono::milliseconds connectTimeout{5000};
};

// "https://HOST:PORT" (or "HOST:PORT"); "" -> KUBERNETES_SERVICE_HOST/_PORT. Throws
// std::runtime_error naming what is missing.
KubeSettings kubeEndpoint(const std::string& api);

struct KubeResponse {
  unsigned status = 0;
  std::string body;
};

class KubeClient {
 public:
  // Throws std::runtime_error when the CA file cannot be loaded.
  KubeClient(boost::asio::io_context& io, KubeSettings settings);
  ~KubeClient();
  KubeClient(const KubeClient&) = delete;
  KubeClient& operator=(const KubeClient&) = delete;

  // One request (body "" = none; a body is sent as application/json, or as a merge patch for
  // PATCH). The whole exchange takes at most timeout; the response body at most maxBody bytes.
  boost::asio::awaitable<Result<KubeResponse>> request(std::string method, std::string target,
                                                       std::string body,
                                                       std::chrono::milliseconds timeout,
                                                       size_t maxBody);

  // A watch: GET target and, on 200, calls onLine with every line of the streamed body (one
  // JSON event each) until the server ends the stream, a read waits longer than idle, a line
  // exceeds maxLine or onLine returns false. The returned response has the status and, when it
  // is not 200, the body (a Status object).
  using LineHandler = std::function<bool(std::string_view line)>;
  boost::asio::awaitable<Result<KubeResponse>> watch(std::string target,
                                                     std::chrono::milliseconds idle, size_t maxLine,
                                                     LineHandler onLine);

  struct Impl;  // the Beast and OpenSSL types stay in kube_client.cpp

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace evosip::controller
