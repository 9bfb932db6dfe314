#include <chrono>

#include <evosip/api/provisioning_store.hpp>
#include <evosip/log/log.hpp>

namespace evosip::api {

namespace {

const prometheus::Histogram::BucketBoundaries kLatencyBuckets = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};

std::string text(const std::optional<std::string>& v) {
  return v.value_or("");
}

int64_t number(const std::optional<std::string>& v) {
  return v ? std::stoll(*v) : 0;
}

SubscriberRecord subscriberFromRow(const DbRow& row) {
  return SubscriberRecord{text(row[0]), text(row[1]), text(row[2]),
                          text(row[3]), text(row[4]), text(row[5])};
}

constexpr const char* kSubscriberColumns =
    "domain, username, ha1_md5, ha1_sha256, created_at, updated_at";

// Done when the statement changed a row, kNotFound when it changed none.
DbCallback changedOrNotFound(StoreCallback<Done> done) {
  return [done = std::move(done)](tl::expected<DbResult, DbError> r) {
    if (!r) {
      done(tl::unexpected(storeError(r.error())));
    } else if (r->affected == 0) {
      done(tl::unexpected(StoreError{StoreErrc::kNotFound, "not found"}));
    } else {
      done(Done{});
    }
  };
}

}  // namespace

StoreError storeError(const DbError& error) {
  switch (error.kind) {
    case DbErrorKind::kUniqueViolation:
      return {StoreErrc::kConflict, error.message};
    case DbErrorKind::kUnavailable:
      return {StoreErrc::kUnavailable, error.message};
    case DbErrorKind::kForeignKeyViolation:
      return {StoreErrc::kConflict, error.message};
    case DbErrorKind::kOther:
      break;
  }
  return {StoreErrc::kFailed, error.message};
}

ProvisioningStore::ProvisioningStore(Database& db, metrics::Registry& metrics)
    : db_(db),
      latency_(
          metrics.histogramFamily("evosip_api_db_latency_seconds",
                                  "Time from sending a statement to its result, by operation")),
      errors_(metrics.counterFamily("evosip_api_db_errors_total",
                                    "Statements that failed, by operation and kind "
                                    "(conflict, unavailable, failed)")) {}

void ProvisioningStore::run(const char* operation, std::string sql, std::vector<DbValue> params,
                            DbCallback done) {
  const auto start = std::chrono::steady_clock::now();
  auto& histogram = latency_.Add({{"operation", operation}}, kLatencyBuckets);
  db_.execute(
      std::move(sql), std::move(params),
      [this, operation, start, &histogram,
       done = std::move(done)](tl::expected<DbResult, DbError> r) {
        histogram.Observe(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        if (!r) {
          const StoreError e = storeError(r.error());
          const char* kind = e.code == StoreErrc::kConflict      ? "conflict"
                             : e.code == StoreErrc::kUnavailable ? "unavailable"
                                                                 : "failed";
          errors_.Add({{"operation", operation}, {"kind", kind}}).Increment();
          if (e.code == StoreErrc::kFailed) {
            log::get("api")->error("database {} failed: {}", operation, e.message);
          }
        }
        done(std::move(r));
      });
}

void ProvisioningStore::createDomain(const DomainRecord& domain, StoreCallback<Done> done) {
  run("create_domain", "INSERT INTO domains (name, created_at) VALUES ($1, $2)",
      {domain.name, domain.createdAt}, [done](tl::expected<DbResult, DbError> r) {
        if (!r) {
          done(tl::unexpected(storeError(r.error())));
          return;
        }
        done(Done{});
      });
}

void ProvisioningStore::getDomain(const std::string& name, StoreCallback<DomainRecord> done) {
  run("get_domain", "SELECT name, created_at FROM domains WHERE name = $1", {name},
      [done](tl::expected<DbResult, DbError> r) {
        if (!r) {
          done(tl::unexpected(storeError(r.error())));
        } else if (r->rows.empty()) {
          done(tl::unexpected(StoreError{StoreErrc::kNotFound, "domain not found"}));
        } else {
          done(DomainRecord{text(r->rows[0][0]), text(r->rows[0][1])});
        }
      });
}

void ProvisioningStore::listDomains(int64_t offset, int64_t limit,
                                    StoreCallback<Page<DomainRecord>> done) {
  run("count_domains", "SELECT count(*) FROM domains", {},
      [this, offset, limit, done](tl::expected<DbResult, DbError> count) {
        if (!count) {
          done(tl::unexpected(storeError(count.error())));
          return;
        }
        const int64_t total = count->rows.empty() ? 0 : number(count->rows[0][0]);
        run("list_domains", "SELECT name, created_at FROM domains ORDER BY name LIMIT $1 OFFSET $2",
            {limit, offset}, [total, done](tl::expected<DbResult, DbError> r) {
              if (!r) {
                done(tl::unexpected(storeError(r.error())));
                return;
              }
              Page<DomainRecord> page;
              page.total = total;
              for (const auto& row : r->rows) {
                page.items.push_back(DomainRecord{text(row[0]), text(row[1])});
              }
              done(std::move(page));
            });
      });
}

void ProvisioningStore::deleteDomain(const std::string& name, StoreCallback<Done> done) {
  run("delete_domain", "DELETE FROM domains WHERE name = $1", {name},
      changedOrNotFound([done](tl::expected<Done, StoreError> r) {
        if (!r && r.error().code == StoreErrc::kConflict) {
          done(tl::unexpected(StoreError{StoreErrc::kConflict, "the domain has subscribers"}));
          return;
        }
        done(std::move(r));
      }));
}

void ProvisioningStore::createSubscriber(const SubscriberRecord& s, StoreCallback<Done> done) {
  run("create_subscriber",
      std::string("INSERT INTO subscribers (") + kSubscriberColumns +
          ") VALUES ($1, $2, $3, $4, $5, $5)",
      {s.domain, s.username, s.ha1Md5, s.ha1Sha256, s.createdAt},
      [done](tl::expected<DbResult, DbError> r) {
        if (!r) {
          if (r.error().kind == DbErrorKind::kForeignKeyViolation) {
            done(tl::unexpected(StoreError{StoreErrc::kDomainNotFound, "domain not found"}));
            return;
          }
          done(tl::unexpected(storeError(r.error())));
          return;
        }
        done(Done{});
      });
}

void ProvisioningStore::getSubscriber(const std::string& domain, const std::string& username,
                                      StoreCallback<SubscriberRecord> done) {
  run("get_subscriber",
      std::string("SELECT ") + kSubscriberColumns +
          " FROM subscribers WHERE domain = $1 AND username = $2",
      {domain, username}, [done](tl::expected<DbResult, DbError> r) {
        if (!r) {
          done(tl::unexpected(storeError(r.error())));
        } else if (r->rows.empty()) {
          done(tl::unexpected(StoreError{StoreErrc::kNotFound, "subscriber not found"}));
        } else {
          done(subscriberFromRow(r->rows[0]));
        }
      });
}

void ProvisioningStore::listSubscribers(const std::string& domain, int64_t offset, int64_t limit,
                                        StoreCallback<Page<SubscriberRecord>> done) {
  auto page = [this, domain, offset, limit, done](int64_t total) {
    std::string sql = std::string("SELECT ") + kSubscriberColumns + " FROM subscribers";
    std::vector<DbValue> params{limit, offset};
    if (domain.empty()) {
      sql += " ORDER BY domain, username LIMIT $1 OFFSET $2";
    } else {
      sql += " WHERE domain = $3 ORDER BY username LIMIT $1 OFFSET $2";
      params.emplace_back(domain);
    }
    run("list_subscribers", std::move(sql), std::move(params),
        [total, done](tl::expected<DbResult, DbError> r) {
          if (!r) {
            done(tl::unexpected(storeError(r.error())));
            return;
          }
          Page<SubscriberRecord> result;
          result.total = total;
          for (const auto& row : r->rows) {
            result.items.push_back(subscriberFromRow(row));
          }
          done(std::move(result));
        });
  };
  if (domain.empty()) {
    run("count_subscribers", "SELECT count(*) FROM subscribers", {},
        [page, done](tl::expected<DbResult, DbError> r) {
          if (!r) {
            done(tl::unexpected(storeError(r.error())));
            return;
          }
          page(r->rows.empty() ? 0 : number(r->rows[0][0]));
        });
    return;
  }
  run("count_subscribers",
      "SELECT (SELECT count(*) FROM domains WHERE name = $1),"
      " (SELECT count(*) FROM subscribers WHERE domain = $1)",
      {domain}, [page, done](tl::expected<DbResult, DbError> r) {
        if (!r) {
          done(tl::unexpected(storeError(r.error())));
          return;
        }
        if (r->rows.empty() || number(r->rows[0][0]) == 0) {
          done(tl::unexpected(StoreError{StoreErrc::kNotFound, "domain not found"}));
          return;
        }
        page(number(r->rows[0][1]));
      });
}

void ProvisioningStore::updateCredentials(const std::string& domain, const std::string& username,
                                          const std::string& ha1Md5, const std::string& ha1Sha256,
                                          const std::string& updatedAt, StoreCallback<Done> done) {
  run("update_subscriber",
      "UPDATE subscribers SET ha1_md5 = $3, ha1_sha256 = $4, updated_at = $5"
      " WHERE domain = $1 AND username = $2",
      {domain, username, ha1Md5, ha1Sha256, updatedAt}, changedOrNotFound(std::move(done)));
}

void ProvisioningStore::deleteSubscriber(const std::string& domain, const std::string& username,
                                         StoreCallback<Done> done) {
  run("delete_subscriber", "DELETE FROM subscribers WHERE domain = $1 AND username = $2",
      {domain, username}, changedOrNotFound(std::move(done)));
}

}  // namespace evosip::api
