// Calibration data sources (see calib_data.h for the spec forms and the sample/batch rules).
//
// Sample s of an array with `count` samples occupies bytes [s·b, (s+1)·b) of its data,
// b = bytes / count — so a batch is a byte range, read with one seek per input and file.
#include "engine/calib_data.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "engine/npy.h"
#include "graph/errors.h"

namespace oc {

namespace fs = std::filesystem;

namespace {

const char* const kSpecForms = "FILE.npy, FILE.npz, a directory of .npy/.npz files or of .png/.jpg images, an image, or random:N[:SEED]";

uint64_t le(const std::string& b, size_t off, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b.at(off + static_cast<size_t>(i)));
  return v;
}

std::string read_range(std::ifstream& f, uint64_t off, uint64_t n, const std::string& what) {
  std::string out(n, '\0');
  f.clear();
  f.seekg(static_cast<std::streamoff>(off));
  f.read(out.data(), static_cast<std::streamsize>(n));
  if (static_cast<uint64_t>(f.gcount()) != n) throw InvalidArgument(what + ": file is truncated");
  return out;
}

std::ifstream open_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw InvalidArgument("cannot open calibration data '" + p.string() + "'");
  return f;
}

// Inflates raw deflate data at [off, off+csize) until `want` output bytes (or the end).
std::string inflate_entry(std::ifstream& f, uint64_t off, uint64_t csize, uint64_t want, const std::string& what) {
  z_stream zs{};
  if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) throw InvalidArgument(what + ": zlib init failed");
  std::string out(want, '\0');
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(want);
  std::string in;
  uint64_t pos = 0;
  int rc = Z_OK;
  while (zs.avail_out > 0 && rc != Z_STREAM_END) {
    if (zs.avail_in == 0) {
      if (pos >= csize) break;
      const uint64_t n = std::min<uint64_t>(csize - pos, 1 << 16);
      in = read_range(f, off + pos, n, what);
      pos += n;
      zs.next_in = reinterpret_cast<Bytef*>(in.data());
      zs.avail_in = static_cast<uInt>(n);
    }
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
      inflateEnd(&zs);
      throw InvalidArgument(what + ": corrupt deflate data");
    }
  }
  out.resize(want - zs.avail_out);
  inflateEnd(&zs);
  return out;
}

// Where one array lives: a .npy file, or an entry of an .npz (stored or deflated).
struct ArrayLoc {
  fs::path file;
  std::string entry;      // npz key; "" for .npy
  uint64_t start = 0;     // file offset of the entry (npz) or 0 (.npy)
  int method = 0;         // 0 stored, 8 deflate
  uint64_t csize = 0, usize = 0;
  uint64_t header = 0;    // .npy header bytes before the data
  DType dtype = DType::Undefined;
  std::vector<int64_t> dims;
  std::string what() const { return entry.empty() ? file.string() : file.string() + ":" + entry; }
};

// Reads a .npy header (engine/npy.h) from the entry's first bytes (which hold at least the whole header).
void parse_header(const std::string& b, ArrayLoc& a) {
  NpyHeader h = parse_npy_header(b, a.what());
  a.dtype = h.dtype;
  a.dims = std::move(h.dims);
  a.header = h.data_offset;
}

uint64_t data_bytes(const ArrayLoc& a) {
  int64_t n = 1;
  for (auto d : a.dims) n *= d;
  return dtype_storage_bytes(a.dtype, n);
}

ArrayLoc scan_npy(const fs::path& p) {
  ArrayLoc a;
  a.file = p;
  std::ifstream f = open_file(p);
  const uint64_t size = fs::file_size(p);
  std::string head = read_range(f, 0, std::min<uint64_t>(size, 12), p.string());
  if (const uint64_t total = npy_header_size(head)) head = read_range(f, 0, std::min(size, total), p.string());
  parse_header(head, a);
  a.csize = a.usize = size;
  if (size < a.header + data_bytes(a)) throw InvalidArgument(p.string() + ": .npy data is truncated");
  return a;
}

// The arrays of an .npz, from its central directory; only headers are read.
std::vector<ArrayLoc> scan_npz(const fs::path& p) {
  std::ifstream f = open_file(p);
  const std::string what = p.string();
  const uint64_t size = fs::file_size(p);
  const uint64_t tail_len = std::min<uint64_t>(size, 22 + 65535);
  const std::string tail = read_range(f, size - tail_len, tail_len, what);
  const size_t eocd = tail.rfind(std::string("PK\x05\x06", 4));
  if (eocd == std::string::npos || eocd + 22 > tail.size()) throw InvalidArgument(what + ": not an .npz (zip) file");
  const uint64_t count = le(tail, eocd + 10, 2), cd_size = le(tail, eocd + 12, 4), cd_off = le(tail, eocd + 16, 4);
  if (cd_off == 0xFFFFFFFF || count == 0xFFFF) throw UnsupportedError(what + ": zip64 archives over 4 GiB are not supported");
  const std::string cd = read_range(f, cd_off, cd_size, what);
  std::vector<ArrayLoc> out;
  size_t pos = 0;
  for (uint64_t e = 0; e < count; ++e) {
    if (pos + 46 > cd.size() || cd.compare(pos, 4, "PK\x01\x02") != 0) throw InvalidArgument(what + ": corrupt zip directory");
    ArrayLoc a;
    a.file = p;
    a.method = static_cast<int>(le(cd, pos + 10, 2));
    a.csize = le(cd, pos + 20, 4);
    a.usize = le(cd, pos + 24, 4);
    const size_t nlen = le(cd, pos + 28, 2), xlen = le(cd, pos + 30, 2), clen = le(cd, pos + 32, 2);
    uint64_t local = le(cd, pos + 42, 4);
    a.entry = cd.substr(pos + 46, nlen);
    // zip64 extra field: numpy writes one for every entry (sizes 0xFFFFFFFF in the fixed part).
    for (size_t x = pos + 46 + nlen; x + 4 <= pos + 46 + nlen + xlen;) {
      const uint64_t id = le(cd, x, 2), sz = le(cd, x + 2, 2);
      if (id == 1) {
        size_t q = x + 4;
        if (a.usize == 0xFFFFFFFF) { a.usize = le(cd, q, 8); q += 8; }
        if (a.csize == 0xFFFFFFFF) { a.csize = le(cd, q, 8); q += 8; }
        if (local == 0xFFFFFFFF) { local = le(cd, q, 8); }
      }
      x += 4 + sz;
    }
    pos += 46 + nlen + xlen + clen;
    if (a.entry.size() > 4 && a.entry.compare(a.entry.size() - 4, 4, ".npy") == 0) a.entry.resize(a.entry.size() - 4);
    const std::string lh = read_range(f, local, 30, a.what());
    if (lh.compare(0, 4, "PK\x03\x04") != 0) throw InvalidArgument(a.what() + ": corrupt zip entry");
    a.start = local + 30 + le(lh, 26, 2) + le(lh, 28, 2);
    if (a.method != 0 && a.method != 8)
      throw UnsupportedError(a.what() + ": zip compression method " + std::to_string(a.method) + " is not supported");
    if (a.start + a.csize > size) throw InvalidArgument(a.what() + ": truncated zip entry");
    const uint64_t want = std::min<uint64_t>(a.usize, 65536 + 12);
    parse_header(a.method == 0 ? read_range(f, a.start, want, a.what()) : inflate_entry(f, a.start, a.csize, want, a.what()), a);
    if (a.usize < a.header + data_bytes(a)) throw InvalidArgument(a.what() + ": .npy data is truncated");
    out.push_back(std::move(a));
  }
  return out;
}

bool has_ext(const fs::path& p, const char* ext) { return p.extension() == ext; }

// splitmix64: a seeded, platform-independent stream for random: samples.
uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

// ------------------------------------------------------------------------------------------

struct CalibrationSource::Impl {
  struct Input {
    std::string name;
    DType dtype = DType::Undefined;
    bool has_shape = false;
    Shape shape;
    int64_t unit = 1;  // rows of axis 0 per sample (0 for scalars)
  };
  struct Part {               // one input's data within a chunk
    ArrayLoc loc;             // unused for random chunks
    std::vector<int64_t> sample_dims;
    bool repeat = false;      // one sample reused for every sample of the chunk
    uint64_t sample_bytes = 0;
  };
  struct Chunk {
    std::string what;
    int64_t count = 0;
    bool random = false;
    std::vector<fs::path> images;  // an image chunk: one sample per file
    ImageLayout layout;
    std::vector<Part> parts;  // by input index
    bool has_repeat() const { return std::any_of(parts.begin(), parts.end(), [](const Part& p) { return p.repeat; }); }
  };
  struct Segment { size_t chunk; int64_t start, n, global; };

  std::string spec;
  CalibrationDataOptions opt;
  std::vector<Input> inputs;
  std::vector<Chunk> chunks;
  std::vector<std::vector<Segment>> batches;
  int64_t samples = 0, per_run = 1, last_n = 0;
  std::vector<int64_t> last_ids, labels;
  std::vector<std::string> classes;
  std::set<int64_t> skipped;
  size_t cursor = 0;
  uint64_t seed = 0;
  // Inflated deflate entries, one per input (the data of the file being read).
  std::vector<std::pair<std::string, std::string>> inflated;

  std::string expects(const Input& in) const {
    return in.name + ": " + dtype_name(in.dtype) + (in.has_shape ? shape_str(in.shape) : std::string("[?]"));
  }
  std::string input_names() const {
    std::string s;
    for (const auto& in : inputs) s += (s.empty() ? "" : ", ") + in.name;
    return s;
  }

  // Validates `dims` (one sample or samples, as stored) against the model and returns the count
  // of samples; fills the part's per-sample dims.
  int64_t fit(const Input& in, const std::vector<int64_t>& stored, DType dtype, const std::string& where, Part& part) const {
    auto bad_shape = [&]() {
      return InvalidArgument("calibration input '" + in.name + "' has shape " + shape_str(stored) + " but the model expects " +
                             (in.has_shape ? shape_str(in.shape) : std::string("[?]")) + " (" + where + ")");
    };
    if (dtype != in.dtype && !(dtype_is_float(dtype) && dtype_is_float(in.dtype)))
      throw InvalidArgument("calibration input '" + in.name + "' is " + dtype_name(dtype) + " but the model expects " +
                            dtype_name(in.dtype) + " (" + where + ")");
    if (!in.has_shape) {  // rank unknown: the array is a batch of samples as stored
      if (stored.empty()) { part.sample_dims = stored; return 1; }
      part.sample_dims = stored;
      part.sample_dims[0] = 1;
      return stored[0];
    }
    const size_t r = in.shape.size();
    if (r == 0) {
      if (!stored.empty()) throw bad_shape();
      part.sample_dims = {};
      return 1;
    }
    std::vector<int64_t> d;
    if (stored.size() == r) d = stored;
    else if (stored.size() + 1 == r) { d = stored; d.insert(d.begin(), 1); }
    else if (stored.size() == r + 1) { d.assign(stored.begin() + 1, stored.end()); d[0] *= stored[0]; }
    else throw bad_shape();
    for (size_t i = 1; i < r; ++i)
      if (in.shape[i].known() && in.shape[i].value != d[i]) throw bad_shape();
    if (in.unit > 1 && d[0] % in.unit != 0) throw bad_shape();
    part.sample_dims = d;
    part.sample_dims[0] = in.unit;
    return d[0] / in.unit;
  }

  void add_file_chunk(const std::string& what, std::map<std::string, ArrayLoc> arrays) {
    for (const auto& [key, loc] : arrays)
      if (std::none_of(inputs.begin(), inputs.end(), [&](const Input& in) { return in.name == key; }))
        throw InvalidArgument("calibration data " + what + " has '" + key + "', which is not a model input (inputs: " +
                              input_names() + ")");
    Chunk c;
    c.what = what;
    std::vector<int64_t> counts;
    for (const auto& in : inputs) {
      auto it = arrays.find(in.name);
      if (it == arrays.end())
        throw InvalidArgument("calibration data " + what + " lacks input '" + in.name + "' (the model expects " + expects(in) + ")");
      Part p;
      p.loc = it->second;
      counts.push_back(fit(in, p.loc.dims, p.loc.dtype, p.loc.what(), p));
      c.parts.push_back(std::move(p));
    }
    c.count = *std::max_element(counts.begin(), counts.end());
    for (size_t i = 0; i < inputs.size(); ++i) {
      Part& p = c.parts[i];
      if (counts[i] != c.count && counts[i] != 1) {
        std::string detail;
        for (size_t j = 0; j < inputs.size(); ++j)
          detail += (j ? ", " : "") + inputs[j].name + ": " + std::to_string(counts[j]);
        throw InvalidArgument("calibration data " + what + " has different sample counts per input (" + detail + ")");
      }
      p.repeat = counts[i] == 1 && c.count > 1;
      p.sample_bytes = counts[i] ? data_bytes(p.loc) / static_cast<uint64_t>(counts[i]) : 0;
    }
    if (c.count == 0) throw InvalidArgument("calibration data " + what + " holds no samples");
    chunks.push_back(std::move(c));
  }

  void add_random(const std::string& rest) {
    static const std::regex re("^([0-9]+)(?::([0-9]+))?$");
    std::smatch m;
    if (!std::regex_match(rest, m, re) || std::stoll(m[1]) <= 0)
      throw InvalidArgument("calibration spec 'random:" + rest + "' is not random:N[:SEED] with N > 0");
    seed = m[2].matched ? std::stoull(m[2]) : 0;
    for (const auto& [key, dims] : opt.shapes)
      if (std::none_of(inputs.begin(), inputs.end(), [&](const Input& in) { return in.name == key; }))
        throw InvalidArgument("shape given for '" + key + "', which is not a model input (inputs: " + input_names() + ")");
    Chunk c;
    c.what = "random:" + rest;
    c.random = true;
    c.count = std::stoll(m[1]);
    for (const auto& in : inputs) {
      Part p;
      std::vector<int64_t> dims;
      if (opt.shapes.count(in.name)) {
        dims = opt.shapes.at(in.name);
      } else {
        for (const Dim& d : in.shape) dims.push_back(d.known() ? d.value : 1);
        if (!dims.empty() && !in.shape[0].known()) dims[0] = 1;
      }
      if (fit(in, dims, in.dtype, "random", p) != 1 && in.has_shape && !in.shape.empty())
        throw InvalidArgument("shape " + shape_str(dims) + " given for '" + in.name +
                              "' holds more than one sample: give one sample's shape and set the batch size");
      int64_t n = 1;
      for (auto d : p.sample_dims) n *= d;
      p.sample_bytes = dtype_storage_bytes(in.dtype, n);
      c.parts.push_back(std::move(p));
    }
    chunks.push_back(std::move(c));
  }

  void add_images(const std::string& what, ImageFolder folder) {
    if (inputs.size() != 1)
      throw InvalidArgument("image data " + what + " feeds one input but the model has " + std::to_string(inputs.size()) +
                            " (" + input_names() + "): use an .npz keyed by input name");
    const Input& in = inputs[0];
    ValueInfo vi;
    vi.name = in.name;
    vi.dtype = in.dtype;
    vi.has_shape = in.has_shape;
    vi.shape = in.shape;
    auto given = opt.shapes.find(in.name);
    Chunk c;
    c.what = what;
    c.layout = image_layout(vi, given == opt.shapes.end() ? std::vector<int64_t>{} : given->second);
    check_image_options(opt.image, c.layout);
    if (in.unit > 1)
      throw InvalidArgument("model input '" + in.name + "' has a fixed batch of " + std::to_string(in.unit) +
                            ": image folders feed inputs with batch 1 or a symbolic batch");
    // Headers only: an unreadable or unusable file fails now, naming it, not halfway through.
    for (const auto& f : folder.files) {
      const Image h = read_image_header(f);
      if (h.channels == 3 && c.layout.channels == 1)
        throw InvalidArgument("image '" + f.string() + "' is colour (RGB) but the model input '" + in.name +
                              "' takes 1 channel: convert the images to grayscale");
      if (opt.image.resize == ImageOptions::Resize::None && (h.width != c.layout.width || h.height != c.layout.height))
        throw InvalidArgument("image '" + f.string() + "' is " + std::to_string(h.width) + "x" + std::to_string(h.height) +
                              " but the model input '" + in.name + "' takes " + std::to_string(c.layout.width) + "x" +
                              std::to_string(c.layout.height) + " (--resize none; use --resize shorter or exact)");
    }
    Part p;
    if (fit(in, c.layout.sample_dims(), in.dtype, what, p) != 1)
      throw InvalidArgument("model input '" + in.name + "' does not take one image per sample");
    int64_t n = 1;
    for (auto d : p.sample_dims) n *= d;
    p.sample_bytes = dtype_storage_bytes(in.dtype, n);
    c.parts.push_back(std::move(p));
    c.count = static_cast<int64_t>(folder.files.size());
    c.images = std::move(folder.files);
    labels = std::move(folder.labels);
    classes = std::move(folder.classes);
    chunks.push_back(std::move(c));
  }

  void plan() {
    const bool all_batched = std::all_of(inputs.begin(), inputs.end(), [](const Input& in) {
      return !in.has_shape || (!in.shape.empty() && !in.shape[0].known());
    });
    per_run = all_batched ? std::max<int64_t>(1, opt.batch_size) : 1;
    int64_t left = opt.max_samples > 0 ? opt.max_samples : INT64_MAX;
    std::vector<Segment> cur;
    int64_t cur_n = 0;
    const Chunk* prev = nullptr;
    auto flush = [&]() {
      if (!cur.empty()) batches.push_back(std::move(cur));
      cur.clear();
      cur_n = 0;
    };
    for (size_t ci = 0; ci < chunks.size() && left > 0; ++ci) {
      const Chunk& c = chunks[ci];
      // Samples from different files share a batch only when they are shaped alike.
      bool joinable = prev && !c.has_repeat() && !prev->has_repeat();
      for (size_t i = 0; joinable && i < inputs.size(); ++i)
        joinable = c.parts[i].sample_dims == prev->parts[i].sample_dims && c.parts[i].loc.dtype == prev->parts[i].loc.dtype;
      if (!joinable) flush();
      for (int64_t s = 0; s < c.count && left > 0;) {
        const int64_t n = std::min({per_run - cur_n, c.count - s, left});
        cur.push_back({ci, s, n, samples});
        cur_n += n;
        s += n;
        left -= n;
        samples += n;
        if (cur_n == per_run) flush();
      }
      prev = &c;
    }
    flush();
  }

  std::string read_part(size_t input, const Part& p, uint64_t off, uint64_t n) {
    const ArrayLoc& a = p.loc;
    if (a.method == 0) {
      std::ifstream f = open_file(a.file);
      return read_range(f, a.start + a.header + off, n, a.what());
    }
    auto& cache = inflated[input];
    if (cache.first != a.what()) {
      std::ifstream f = open_file(a.file);
      cache.second = inflate_entry(f, a.start, a.csize, a.usize, a.what());
      cache.first = a.what();
      if (cache.second.size() < a.header + data_bytes(a)) throw InvalidArgument(a.what() + ": .npy data is truncated");
    }
    return cache.second.substr(a.header + off, n);
  }

  void random_sample(const Input& in, const Part& p, int64_t sample, size_t input, Bytes& out) {
    int64_t n = 1;
    for (auto d : p.sample_dims) n *= d;
    if (!dtype_is_float(in.dtype)) {  // integer / bool inputs: zeros (ids, lengths, flags)
      out.insert(out.end(), p.sample_bytes, 0);
      return;
    }
    uint64_t s = seed * 0x100000001B3ull ^ (static_cast<uint64_t>(sample) << 16) ^ input;
    splitmix(s);
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = static_cast<float>(splitmix(s) >> 40) * (1.0f / 16777216.0f);  // 24 bits: [0,1)
    Tensor t = Tensor::from_float_as("", in.dtype, {n}, v);
    out.insert(out.end(), t.bytes.begin(), t.bytes.end());
  }

  // Where sample k of a batch came from: the chunk's name and the sample's index in it.
  std::string origin(const std::vector<Segment>& segs, int64_t k) const {
    for (const auto& s : segs) {
      if (k < s.n) {
        const Chunk& c = chunks[s.chunk];
        if (!c.images.empty()) return c.images[static_cast<size_t>(s.start + k)].string();
        return "sample " + std::to_string(s.start + k) + " of " + c.what;
      }
      k -= s.n;
    }
    return "?";
  }

  // NaN/Inf in float inputs: an error naming input, file and sample, or (skip_bad_samples) the
  // sample is removed from every input of the batch. Returns false when no sample is left.
  bool screen(const std::vector<Segment>& segs, std::map<std::string, Tensor>& batch) {
    const int64_t total = last_n;
    std::vector<bool> bad(static_cast<size_t>(total), false);
    bool any = false;
    for (const auto& in : inputs) {
      const Tensor& t = batch.at(in.name);
      if (!dtype_is_float(t.dtype)) continue;
      const std::vector<float> v = t.to_float();
      const size_t per = t.dims.empty() ? v.size() : v.size() / static_cast<size_t>(total);
      for (int64_t k = 0; k < total; ++k) {
        const size_t b = t.dims.empty() ? 0 : static_cast<size_t>(k) * per;
        for (size_t j = b; j < b + per; ++j) {
          if (std::isfinite(v[j])) continue;
          if (!opt.skip_bad_samples)
            throw InvalidArgument("calibration input '" + in.name + "' has " + (std::isnan(v[j]) ? "NaN" : "Inf") + " in " +
                                  origin(segs, k) + " (--skip-bad-samples leaves such samples out)");
          bad[static_cast<size_t>(k)] = any = true;
          break;
        }
      }
    }
    if (!any) return true;
    int64_t kept = 0;
    std::vector<int64_t> ids;
    for (int64_t k = 0; k < total; ++k) {
      if (bad[static_cast<size_t>(k)]) skipped.insert(last_ids[static_cast<size_t>(k)]);
      else ids.push_back(last_ids[static_cast<size_t>(k)]), ++kept;
    }
    for (auto& [name, t] : batch) {
      if (t.dims.empty() || kept == 0) continue;
      const size_t per = t.bytes.size() / static_cast<size_t>(total);
      std::vector<uint8_t> out;
      out.reserve(per * static_cast<size_t>(kept));
      for (int64_t k = 0; k < total; ++k)
        if (!bad[static_cast<size_t>(k)])
          out.insert(out.end(), t.bytes.begin() + static_cast<std::ptrdiff_t>(per * static_cast<size_t>(k)),
                     t.bytes.begin() + static_cast<std::ptrdiff_t>(per * static_cast<size_t>(k + 1)));
      t.dims[0] = t.dims[0] / total * kept;
      t.bytes = std::move(out);
    }
    last_n = kept;
    last_ids = std::move(ids);
    return kept > 0;
  }

  bool next(std::map<std::string, Tensor>& batch) {
    while (cursor < batches.size()) {
      const auto& segs = batches[cursor++];
      read_batch(segs, batch);
      if (screen(segs, batch)) return true;
    }
    last_n = 0;
    last_ids.clear();
    batch.clear();
    return false;
  }

  void read_batch(const std::vector<Segment>& segs, std::map<std::string, Tensor>& batch) {
    batch.clear();
    int64_t total = 0;
    for (const auto& s : segs) total += s.n;
    last_n = total;
    last_ids.clear();
    for (const auto& s : segs)
      for (int64_t k = 0; k < s.n; ++k) last_ids.push_back(s.global + k);
    for (size_t i = 0; i < inputs.size(); ++i) {
      const Input& in = inputs[i];
      const Part& first = chunks[segs.front().chunk].parts[i];
      Tensor t;
      t.name = in.name;
      t.dims = first.sample_dims;
      DType stored = first.loc.dtype == DType::Undefined || chunks[segs.front().chunk].random ? in.dtype : first.loc.dtype;
      if (!t.dims.empty()) t.dims[0] *= total;
      for (const auto& s : segs) {
        const Chunk& c = chunks[s.chunk];
        const Part& p = c.parts[i];
        if (c.random) {
          for (int64_t k = 0; k < s.n; ++k) random_sample(in, p, s.start + k, i, t.bytes);
        } else if (!c.images.empty()) {
          for (int64_t k = 0; k < s.n; ++k) {
            const fs::path& f = c.images[static_cast<size_t>(s.start + k)];
            const Tensor one = image_to_tensor(read_image(f), c.layout, opt.image, f.string());
            t.bytes.insert(t.bytes.end(), one.bytes.begin(), one.bytes.end());
          }
        } else if (p.repeat || t.dims.empty()) {
          const std::string one = read_part(i, p, 0, p.sample_bytes);
          for (int64_t k = 0; k < (t.dims.empty() ? 1 : s.n); ++k) t.bytes.insert(t.bytes.end(), one.begin(), one.end());
        } else {
          const std::string b = read_part(i, p, static_cast<uint64_t>(s.start) * p.sample_bytes,
                                          static_cast<uint64_t>(s.n) * p.sample_bytes);
          t.bytes.insert(t.bytes.end(), b.begin(), b.end());
        }
      }
      t.dtype = stored;
      if (stored != in.dtype) t = Tensor::from_float_as(in.name, in.dtype, t.dims, t.to_float());
      batch[in.name] = std::move(t);
    }
  }
};

CalibrationSource::CalibrationSource(const std::string& spec, const Model& model, CalibrationDataOptions opt)
    : impl_(std::make_unique<Impl>()) {
  Impl& d = *impl_;
  d.spec = spec;
  d.opt = std::move(opt);
  if (d.opt.batch_size < 1) throw InvalidArgument("calibration batch size must be at least 1");
  for (const ValueInfo* v : model.graph.runtime_inputs()) {
    Impl::Input in;
    in.name = v->name;
    in.dtype = v->dtype;
    in.has_shape = v->has_shape;
    in.shape = v->shape;
    in.unit = in.has_shape && !in.shape.empty() && in.shape[0].known() ? std::max<int64_t>(1, in.shape[0].value) : 1;
    d.inputs.push_back(std::move(in));
  }
  if (d.inputs.empty()) throw InvalidArgument("the model has no runtime inputs to calibrate with");
  d.inflated.resize(d.inputs.size());

  if (spec.rfind("random:", 0) == 0) {
    d.add_random(spec.substr(7));
  } else {
    const fs::path p(spec);
    std::error_code ec;
    auto single = [&](const fs::path& f) {
      if (d.inputs.size() != 1)
        throw InvalidArgument("calibration data " + f.string() + " is a single .npy but the model has " +
                              std::to_string(d.inputs.size()) + " inputs (" + d.input_names() +
                              "): use an .npz keyed by input name");
      d.add_file_chunk(f.string(), {{d.inputs[0].name, scan_npy(f)}});
    };
    auto npz = [&](const fs::path& f) {
      std::map<std::string, ArrayLoc> arrays;
      for (auto& a : scan_npz(f)) arrays[a.entry] = std::move(a);
      d.add_file_chunk(f.string(), std::move(arrays));
    };
    if (fs::is_directory(p, ec)) {
      std::vector<fs::path> files;
      for (const auto& e : fs::directory_iterator(p))
        if (e.is_regular_file() && (has_ext(e.path(), ".npy") || has_ext(e.path(), ".npz"))) files.push_back(e.path());
      std::sort(files.begin(), files.end(), [](const fs::path& a, const fs::path& b) { return a.filename() < b.filename(); });
      ImageFolder images = image_folder(p);
      if (!images.files.empty() && !files.empty())
        throw InvalidArgument("calibration directory '" + spec + "' mixes arrays (" + files[0].filename().string() +
                              ") and images (" + images.files[0].filename().string() + "): use one kind");
      if (!images.files.empty()) d.add_images(spec, std::move(images));
      else if (files.empty())
        throw InvalidArgument("calibration directory '" + spec + "' has no .npy or .npz files (nor .png/.jpg images)");
      for (const auto& f : files) has_ext(f, ".npy") ? single(f) : npz(f);
    } else if (fs::is_regular_file(p, ec) && is_image_path(p)) {
      ImageFolder one;
      one.files.push_back(p);
      d.add_images(spec, std::move(one));
    } else if (fs::is_regular_file(p, ec) && has_ext(p, ".npy")) {
      single(p);
    } else if (fs::is_regular_file(p, ec) && has_ext(p, ".npz")) {
      npz(p);
    } else if (fs::exists(p, ec)) {
      throw InvalidArgument("calibration data '" + spec + "' is not " + kSpecForms);
    } else {
      throw InvalidArgument("calibration data '" + spec + "' does not exist (expected " + kSpecForms + ")");
    }
  }
  d.plan();
}

CalibrationSource::~CalibrationSource() = default;
CalibrationSource::CalibrationSource(CalibrationSource&&) noexcept = default;
CalibrationSource& CalibrationSource::operator=(CalibrationSource&&) noexcept = default;

int64_t CalibrationSource::num_samples() const { return impl_->samples; }
int64_t CalibrationSource::num_batches() const { return static_cast<int64_t>(impl_->batches.size()); }
int64_t CalibrationSource::batch_size() const { return impl_->per_run; }
bool CalibrationSource::next(std::map<std::string, Tensor>& batch) { return impl_->next(batch); }
int64_t CalibrationSource::last_batch_samples() const { return impl_->last_n; }
void CalibrationSource::rewind() { impl_->cursor = 0; impl_->last_n = 0; }
const std::string& CalibrationSource::spec() const { return impl_->spec; }
const std::vector<int64_t>& CalibrationSource::last_batch_ids() const { return impl_->last_ids; }
const std::vector<int64_t>& CalibrationSource::labels() const { return impl_->labels; }
const std::vector<std::string>& CalibrationSource::classes() const { return impl_->classes; }
int64_t CalibrationSource::skipped_samples() const { return static_cast<int64_t>(impl_->skipped.size()); }
std::map<std::string, std::vector<std::pair<std::vector<int64_t>, std::string>>> CalibrationSource::sample_shapes() const {
  std::map<std::string, std::vector<std::pair<std::vector<int64_t>, std::string>>> out;
  for (const auto& c : impl_->chunks) {
    if (c.random) continue;
    for (size_t i = 0; i < c.parts.size() && i < impl_->inputs.size(); ++i) {
      auto& seen = out[impl_->inputs[i].name];
      const auto& dims = c.parts[i].sample_dims;
      if (std::none_of(seen.begin(), seen.end(), [&](const auto& s) { return s.first == dims; }))
        seen.push_back({dims, c.what});
    }
  }
  return out;
}

}  // namespace oc
