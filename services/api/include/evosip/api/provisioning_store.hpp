#pragma once
// Domains and subscribers on top of a Database: the statements of every API operation, the
// mapping of database errors to "not found" / "conflict" / "unavailable", and the database
// metrics (latency histogram, errors). Callbacks run on a thread of the database backend.

#include <functional>
#include <string>
#include <vector>

#include <evosip/api/database.hpp>
#include <evosip/metrics/metrics.hpp>

namespace evosip::api {

struct DomainRecord {
  std::string name;
  std::string createdAt;  // RFC 3339 UTC
};

struct SubscriberRecord {
  std::string domain;
  std::string username;
  std::string ha1Md5;
  std::string ha1Sha256;
  std::string createdAt;
  std::string updatedAt;
};

template <typename T>
struct Page {
  std::vector<T> items;
  int64_t total = 0;
};

enum class StoreErrc {
  kNotFound,        // the domain or subscriber does not exist
  kDomainNotFound,  // creating a subscriber in a domain that does not exist
  kConflict,        // already exists, or a domain still has subscribers
  kUnavailable,     // the database cannot be reached or is busy
  kFailed,          // anything else (logged)
};

struct StoreError {
  StoreErrc code = StoreErrc::kFailed;
  std::string message;
};

template <typename T>
using StoreCallback = std::function<void(tl::expected<T, StoreError>)>;

struct Done {};

class ProvisioningStore {
 public:
  ProvisioningStore(Database& db, metrics::Registry& metrics);

  void createDomain(const DomainRecord& domain, StoreCallback<Done> done);
  void getDomain(const std::string& name, StoreCallback<DomainRecord> done);
  void listDomains(int64_t offset, int64_t limit, StoreCallback<Page<DomainRecord>> done);
  // kConflict while the domain has subscribers.
  void deleteDomain(const std::string& name, StoreCallback<Done> done);

  void createSubscriber(const SubscriberRecord& subscriber, StoreCallback<Done> done);
  void getSubscriber(const std::string& domain, const std::string& username,
                     StoreCallback<SubscriberRecord> done);
  // Sorted by domain then username; domain "" lists every domain. A domain that does not exist
  // gives kNotFound.
  void listSubscribers(const std::string& domain, int64_t offset, int64_t limit,
                       StoreCallback<Page<SubscriberRecord>> done);
  void updateCredentials(const std::string& domain, const std::string& username,
                         const std::string& ha1Md5, const std::string& ha1Sha256,
                         const std::string& updatedAt, StoreCallback<Done> done);
  void deleteSubscriber(const std::string& domain, const std::string& username,
                        StoreCallback<Done> done);

 private:
  // Runs one statement, timing it and counting failures by kind.
  void run(const char* operation, std::string sql, std::vector<DbValue> params, DbCallback done);

  Database& db_;
  prometheus::Family<prometheus::Histogram>& latency_;
  prometheus::Family<prometheus::Counter>& errors_;
};

// StoreError for a database error (unique -> conflict, unavailable -> unavailable, ...).
StoreError storeError(const DbError& error);

}  // namespace evosip::api
