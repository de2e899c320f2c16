#include "tests/integration/kafka_mock.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

namespace sluice::testing {
namespace {

constexpr int16_t kProduceApiKey = 0;  // Kafka protocol ApiKey of Produce

using Clock = std::chrono::steady_clock;

void Set(rd_kafka_conf_t* conf, const char* name, const std::string& value) {
  char errstr[512];
  if (rd_kafka_conf_set(conf, name, value.c_str(), errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(std::string("kafka mock: ") + name + ": " + errstr);
  }
}

// librdkafka's log lines for the helper's own handles: dropped, the test
// asserts on outcomes (the sink under test logs through our logger).
void QuietLog(const rd_kafka_t*, int, const char*, const char*) {}

struct HandleDeleter {
  void operator()(rd_kafka_t* rk) const {
    if (rk != nullptr) rd_kafka_destroy(rk);
  }
};
using Handle = std::unique_ptr<rd_kafka_t, HandleDeleter>;

Handle NewConsumer(const std::string& bootstraps) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  Set(conf, "bootstrap.servers", bootstraps);
  Set(conf, "enable.auto.commit", "false");
  Set(conf, "enable.partition.eof", "false");
  Set(conf, "auto.offset.reset", "earliest");
  // assign() and consumer_poll() need a group; nothing is committed to it.
  static std::atomic<int> readers{0};
  Set(conf, "group.id", "sluice-test-reader-" + std::to_string(++readers));
  rd_kafka_conf_set_log_cb(conf, &QuietLog);
  char errstr[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(std::string("kafka mock: creating a consumer: ") + errstr);
  }
  return Handle(rk);
}

// How many partitions `topic` has, asking the cluster until it answers.
int PartitionCount(rd_kafka_t* rk, const std::string& topic, Clock::time_point deadline) {
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  int partitions = 0;
  std::string last_error = "no answer";
  while (partitions == 0 && Clock::now() < deadline) {
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 2000);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1 &&
        md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      partitions = md->topics[0].partition_cnt;
    } else if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      last_error = rd_kafka_err2name(err);
    } else if (md->topic_cnt == 1) {
      last_error = rd_kafka_err2name(md->topics[0].err);
    }
    if (md != nullptr) rd_kafka_metadata_destroy(md);
    if (partitions == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  rd_kafka_topic_destroy(rkt);
  if (partitions == 0) {
    throw std::runtime_error("kafka mock: no metadata for topic '" + topic + "': " + last_error);
  }
  return partitions;
}

}  // namespace

std::optional<std::string> KafkaMessage::header(const std::string& name) const {
  for (const auto& [n, v] : headers) {
    if (n == name) return v;
  }
  return std::nullopt;
}

int KafkaErrorCode(const std::string& name) {
  const rd_kafka_err_desc* descs = nullptr;
  size_t count = 0;
  rd_kafka_get_err_descs(&descs, &count);
  for (size_t i = 0; i < count; ++i) {
    if (descs[i].name != nullptr && name == descs[i].name) return descs[i].code;
  }
  throw std::runtime_error("kafka mock: unknown error name '" + name + "'");
}

KafkaMock::KafkaMock(int brokers) : brokers_(brokers) {
  // The cluster needs a client handle to live in; this one sends nothing.
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set_log_cb(conf, &QuietLog);
  char errstr[512];
  handle_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (handle_ == nullptr) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(std::string("kafka mock: creating its handle: ") + errstr);
  }
  cluster_ = rd_kafka_mock_cluster_new(handle_, brokers);
  if (cluster_ == nullptr) {
    rd_kafka_destroy(handle_);
    throw std::runtime_error("kafka mock: rd_kafka_mock_cluster_new failed");
  }
}

KafkaMock::~KafkaMock() {
  rd_kafka_mock_cluster_destroy(cluster_);
  rd_kafka_destroy(handle_);
}

std::string KafkaMock::Bootstraps() const { return rd_kafka_mock_cluster_bootstraps(cluster_); }

std::vector<std::string> KafkaMock::BrokerAddresses() const {
  const std::string all = Bootstraps();
  std::vector<std::string> out;
  for (size_t from = 0; from <= all.size();) {
    size_t comma = std::min(all.find(',', from), all.size());
    out.push_back(all.substr(from, comma - from));
    from = comma + 1;
  }
  return out;
}

void KafkaMock::CreateTopic(const std::string& name, int partitions, int replication) {
  rd_kafka_resp_err_t err =
      rd_kafka_mock_topic_create(cluster_, name.c_str(), partitions, replication);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw std::runtime_error("kafka mock: creating topic '" + name +
                             "': " + rd_kafka_err2name(err));
  }
}

void KafkaMock::SetBrokerDown(int broker_id) {
  if (rd_kafka_mock_broker_set_down(cluster_, broker_id) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw std::runtime_error("kafka mock: no broker " + std::to_string(broker_id));
  }
}

void KafkaMock::SetBrokerUp(int broker_id) {
  if (rd_kafka_mock_broker_set_up(cluster_, broker_id) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw std::runtime_error("kafka mock: no broker " + std::to_string(broker_id));
  }
}

void KafkaMock::SetAllBrokersDown() {
  for (int id = 1; id <= brokers_; ++id) SetBrokerDown(id);
}

void KafkaMock::SetAllBrokersUp() {
  for (int id = 1; id <= brokers_; ++id) SetBrokerUp(id);
}

void KafkaMock::PushProduceErrors(const std::vector<std::string>& error_names) {
  std::vector<rd_kafka_resp_err_t> errors;
  for (const std::string& name : error_names) {
    errors.push_back(static_cast<rd_kafka_resp_err_t>(KafkaErrorCode(name)));
  }
  rd_kafka_mock_push_request_errors_array(cluster_, kProduceApiKey, errors.size(), errors.data());
}

std::vector<KafkaMessage> KafkaMock::ReadTopic(const std::string& topic, size_t count,
                                               std::chrono::milliseconds timeout) const {
  const Clock::time_point deadline = Clock::now() + timeout;
  Handle consumer = NewConsumer(Bootstraps());
  const int partitions = PartitionCount(consumer.get(), topic, deadline);
  rd_kafka_topic_partition_list_t* assignment = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(assignment, topic.c_str(), p)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
  }
  rd_kafka_resp_err_t err = rd_kafka_assign(consumer.get(), assignment);
  rd_kafka_topic_partition_list_destroy(assignment);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw std::runtime_error("kafka mock: assigning '" + topic + "': " + rd_kafka_err2name(err));
  }

  std::vector<KafkaMessage> out;
  constexpr auto kQuiet = std::chrono::milliseconds(500);
  Clock::time_point last_message = Clock::now();
  while (true) {
    const Clock::time_point now = Clock::now();
    if (out.size() >= count && now - last_message >= kQuiet) break;
    if (now >= deadline) break;
    rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer.get(), 100);
    if (m == nullptr) continue;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      KafkaMessage msg;
      msg.topic = rd_kafka_topic_name(m->rkt);
      msg.partition = m->partition;
      msg.offset = m->offset;
      if (m->key != nullptr) msg.key.emplace(static_cast<const char*>(m->key), m->key_len);
      if (m->payload != nullptr) msg.value.assign(static_cast<const char*>(m->payload), m->len);
      rd_kafka_headers_t* headers = nullptr;
      if (rd_kafka_message_headers(m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char* name = nullptr;
        const void* value = nullptr;
        size_t size = 0;
        for (size_t i = 0; rd_kafka_header_get_all(headers, i, &name, &value, &size) ==
                           RD_KAFKA_RESP_ERR_NO_ERROR;
             ++i) {
          msg.headers.emplace_back(name, value ? std::string(static_cast<const char*>(value), size)
                                               : std::string());
        }
      }
      out.push_back(std::move(msg));
      last_message = Clock::now();
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(consumer.get());
  return out;
}

}  // namespace sluice::testing
