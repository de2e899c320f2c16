// Line sinks: one JSON record per line, to a file (with size-based rotation)
// or to standard output.
#ifndef SLUICE_SINKS_FILE_SINK_H_
#define SLUICE_SINKS_FILE_SINK_H_

#include <memory>

#include "config/config.h"
#include "sinks/sink.h"

namespace sluice::sinks {

// Appends to `config.path` (created with its directory). When a write would
// take the file past rotate_max_size, the file becomes path.1 (path.1 becomes
// path.2 ...) and only rotate_keep rotated files are kept. A record is never
// split across two files. A file moved away or truncated by someone else
// (logrotate) is noticed at the next batch. With `sync_each_batch` a batch
// counts as written once it is on disk (fdatasync): the sink's `sync: full`.
StatusOr<std::unique_ptr<Sink>> NewFileSink(const config::FileSinkConfig& config,
                                            bool sync_each_batch = false);

StatusOr<std::unique_ptr<Sink>> NewStdoutSink();

}  // namespace sluice::sinks

#endif  // SLUICE_SINKS_FILE_SINK_H_
