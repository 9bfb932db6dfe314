// The state thread of a role (store_thread.hpp).
#include <future>

#include <boost/asio/post.hpp>

#include <evosip/store/store_thread.hpp>

namespace evosip::store {

namespace asio = boost::asio;

StoreThread::StoreThread() : work_(asio::make_work_guard(io_)) {}

StoreThread::~StoreThread() {
  stop(nullptr, std::chrono::milliseconds(0), nullptr);
}

void StoreThread::start(std::shared_ptr<StoreFactory> factory, const Settings& settings,
                        std::function<void()> first) {
  if (!factory) {
    factory = makeStoreFactory(settings);
  }
  store_ = factory->open(io_.get_executor());
  asio::post(io_, std::move(first));
  thread_ = std::thread([this] { io_.run(); });
}

void StoreThread::stop(std::function<void(std::function<void()> done)> last,
                       std::chrono::milliseconds wait, std::function<void()> close) {
  if (!thread_.joinable()) {
    return;
  }
  if (last) {
    auto done = std::make_shared<std::promise<void>>();
    auto finished = done->get_future();
    asio::post(io_, [last = std::move(last), done] { last([done] { done->set_value(); }); });
    finished.wait_for(wait);
  }
  asio::post(io_, [this, close = std::move(close)] {
    if (close) {
      close();
    }
    store_.reset();
    work_.reset();
  });
  thread_.join();
}

}  // namespace evosip::store
