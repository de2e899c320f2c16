// KafkaMock: librdkafka's mock cluster in the test process, on real loopback
// TCP ports, plus a real consumer to read back what arrived.
//
//   KafkaMock kafka(3);                        // 3 brokers on 127.0.0.1
//   kafka.CreateTopic("telemetry", 4);
//   config.brokers = {kafka.Bootstraps()};     // "127.0.0.1:PORT,..." — or write it
//                                              // into a sluice.yaml for the real binary
//   ... run the sink or the `sluice` binary ...
//   std::vector<KafkaMessage> got = kafka.ReadTopic("telemetry", 100, 60s);
//   REQUIRE(got.size() >= 100);                // duplicates (at least once) are possible
//   CHECK(got[0].header("sluice-id") == ...);
//
// Faults:
//   kafka.SetAllBrokersDown();  ...  kafka.SetAllBrokersUp();
//   kafka.PushProduceErrors({"NOT_ENOUGH_REPLICAS", "NOT_ENOUGH_REPLICAS"});  // next 2 Produce
//                                                                             // requests fail
// The cluster lives exactly as long as this object: a `sluice` child process
// started by the test can reach it, and loses it when the test ends. The
// brokers accept plaintext only (no TLS, no SASL). Errors are given by their
// librdkafka name without the RD_KAFKA_RESP_ERR_ prefix ("MSG_SIZE_TOO_LARGE").
//
// Set-up failures throw std::runtime_error, as in harness.h. Not thread-safe
// except where noted; ReadTopic may run while a sink writes.
#ifndef SLUICE_TESTS_INTEGRATION_KAFKA_MOCK_H_
#define SLUICE_TESTS_INTEGRATION_KAFKA_MOCK_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

struct rd_kafka_s;
struct rd_kafka_mock_cluster_s;

namespace sluice::testing {

// One message as a consumer saw it.
struct KafkaMessage {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  std::optional<std::string> key;  // nullopt: no key
  std::string value;
  std::vector<std::pair<std::string, std::string>> headers;  // in order

  // The first header of that name; nullopt when absent.
  std::optional<std::string> header(const std::string& name) const;
};

class KafkaMock {
 public:
  // Starts `brokers` mock brokers (ids 1..brokers) on 127.0.0.1.
  explicit KafkaMock(int brokers = 3);
  ~KafkaMock();
  KafkaMock(const KafkaMock&) = delete;
  KafkaMock& operator=(const KafkaMock&) = delete;

  // "127.0.0.1:PORT1,127.0.0.1:PORT2,..." for bootstrap.servers / `brokers:`.
  std::string Bootstraps() const;
  // The same, one "host:port" per broker: a config's `brokers:` list.
  std::vector<std::string> BrokerAddresses() const;
  int broker_count() const { return brokers_; }

  // Creates a topic. Topics a producer names that do not exist are
  // auto-created by the mock (with its default partition count).
  void CreateTopic(const std::string& name, int partitions, int replication = 1);

  // A broker that is down closes its connections and refuses new ones
  // until it is up again. ids are 1..broker_count().
  void SetBrokerDown(int broker_id);
  void SetBrokerUp(int broker_id);
  void SetAllBrokersDown();
  void SetAllBrokersUp();

  // The next Produce requests (any broker) fail with these errors, one per
  // request, in order; a request carries many messages. Throws on an
  // unknown error name.
  void PushProduceErrors(const std::vector<std::string>& error_names);

  // Reads `topic` from the beginning of every partition with a new consumer
  // until at least `count` messages arrived or `timeout` passed, then for as
  // long as more keep coming (up to 500 ms of quiet), so duplicates show.
  // Messages of one partition are in offset order; partitions follow each
  // other in no particular order. Safe to call from any thread.
  std::vector<KafkaMessage> ReadTopic(const std::string& topic, size_t count,
                                      std::chrono::milliseconds timeout) const;

 private:
  int brokers_;
  rd_kafka_s* handle_ = nullptr;  // owns the mock cluster
  rd_kafka_mock_cluster_s* cluster_ = nullptr;
};

// The value of RD_KAFKA_RESP_ERR_<name>; throws on an unknown name.
int KafkaErrorCode(const std::string& name);

}  // namespace sluice::testing

#endif  // SLUICE_TESTS_INTEGRATION_KAFKA_MOCK_H_
