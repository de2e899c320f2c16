// NetStream: a TCP connection to host:port, with TLS (OpenSSL) when asked,
// non-blocking underneath so that one thread can wait on it and on a wake-up
// descriptor together (poll), and never blocks longer than its caller says.
//
//   auto stream = NetStream::Connect("127.0.0.1", 8883, &tls, Millis(10000));
//   RETURN_IF_ERROR(stream.status());
//   RETURN_IF_ERROR((*stream)->WriteAll(bytes, deadline));
//   StatusOr<size_t> got = (*stream)->Read(buf, sizeof buf);  // 0: nothing yet
#ifndef SLUICE_PLATFORM_NET_STREAM_H_
#define SLUICE_PLATFORM_NET_STREAM_H_

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "platform/clock.h"
#include "platform/status.h"

namespace sluice {

struct TlsOptions {
  std::string ca;    // CA bundle; empty: the system's
  std::string cert;  // client certificate; empty: none
  std::string key;   // its private key
};

class NetStream {
 public:
  // Resolves `host`, connects and, with `tls`, completes the handshake (the
  // server certificate is verified against the CA and `host`), all within
  // `timeout`. kUnavailable / kDeadlineExceeded with the reason otherwise.
  // When `cancel_fd` (an eventfd, say) becomes readable, connecting and
  // WriteAll give up with kAborted.
  static StatusOr<std::unique_ptr<NetStream>> Connect(const std::string& host, int port,
                                                      const TlsOptions* tls, Millis timeout,
                                                      int cancel_fd = -1);
  ~NetStream();
  NetStream(const NetStream&) = delete;
  NetStream& operator=(const NetStream&) = delete;

  // Whatever bytes are there, up to `capacity`; 0 when none are (poll fd()
  // for POLLIN, unless buffered() is true). kUnavailable when the peer
  // closed or the connection broke.
  StatusOr<size_t> Read(char* buf, size_t capacity);
  // Acknowledge every read at once (TCP_QUICKACK, re-armed after each read:
  // the kernel clears it). For a subscriber that only reads: the broker's
  // small writes, held by Nagle's algorithm until the previous ones are
  // acknowledged, otherwise wait for our delayed ACK (milliseconds on
  // loopback, up to 40 ms elsewhere) and arrive in bursts.
  void AckEachRead() { quick_ack_ = true; }
  // True when TLS holds decrypted bytes that poll() cannot see.
  bool buffered() const;
  // Until Read has bytes to give (or the peer closed), `deadline`
  // (kDeadlineExceeded) or the cancel descriptor (kAborted).
  Status WaitReadable(SteadyTime deadline);
  // All of `bytes`, waiting for room until `deadline`.
  Status WriteAll(std::string_view bytes, SteadyTime deadline);
  int fd() const { return fd_; }

 private:
  struct Tls;
  NetStream(int fd, std::unique_ptr<Tls> tls, int cancel_fd);
  void QuickAck() const;
  int fd_;
  int cancel_fd_;
  bool quick_ack_ = false;
  std::unique_ptr<Tls> tls_;
};

}  // namespace sluice

#endif  // SLUICE_PLATFORM_NET_STREAM_H_
