// Memory of models larger than memory (issue 18), beside graph/bytes.h: dropping a mapped tensor's
// pages once it is done, moving finished tensors out of memory into a temporary file, and a
// one-line account of the resident set.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "graph/bytes.h"
#include "graph/ir.h"

namespace oc {

// Drops the pages of a mapped range this process has read (madvise MADV_DONTNEED): they leave the
// resident set (RssFile) and are read from the file again when touched, so it is safe while other
// models share the range. A range whose private mapping mutable access handed out (possibly
// written) keeps its pages; owned bytes and ranges not mapped now are left alone. Callers use it
// once a weight is done (a calibration segment run, a quantized layer).
void release_pages(const Bytes& b);

// An unlinked temporary file that finished tensors are moved into as they are made (layer-streamed
// output): append() writes the bytes and hands back a Bytes mapping them lazily, so a quantized
// model holds one layer's new tensors in memory, not all of them; saving streams them from the file
// (Bytes::write_to) into the output's external data, the same bytes as from memory. The file lives
// in $TMPDIR (else /tmp) and disappears with the last tensor that refers to it.
class SpillFile {
 public:
  SpillFile();  // throws SaveError when no temporary file can be made
  // The bytes as a range of the file; SaveError (naming errno: a full disk) when writing fails.
  Bytes append(const Bytes& b);
  uint64_t bytes() const;  // written so far

 private:
  std::shared_ptr<MappedFile> file_;
};

// Moves `g`'s owned initializers of at least `min_bytes` into `f` (their Bytes become lazy ranges
// of it); returns how many moved. Mapped tensors (the input's external data) stay as they are.
int spill_owned_tensors(Graph& g, SpillFile& f, size_t min_bytes);

// "VmRSS 812 MiB (anon 300, file 512, peak 900), mapped tensors 256 MiB" from /proc/self/status: where the
// resident set is. OC_TRACE_MEMORY=1 (trace_memory()) prints it at each quantized layer,
// calibration segment, prune phase and reconstruction stage.
std::string memory_status_line();
bool trace_memory();
// Hands freed heap memory back to the system (glibc keeps freed chunks below its mmap threshold,
// which grows to 32 MiB, so a phase's freed statistics would otherwise stay in the resident set).
void release_free_heap();

}  // namespace oc
