// native/: RingBuf, the reading end of a BPF ring buffer map (weir_events, `weir monitor`).
// consume() takes what the programs wrote so far and returns at once: it never waits, so
// JS calls it from a timer and the event loop never blocks on the kernel. Each record is
// copied into its own Buffer; decoding is TypeScript's (src/dataplane/monitor.ts).
#include <bpf/libbpf.h>
#include <napi.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "errors.h"

namespace weir {
namespace {

class RingBuf : public Napi::ObjectWrap<RingBuf> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "RingBuf",
                       {InstanceMethod("consume", &RingBuf::Consume), InstanceMethod("close", &RingBuf::Close)});
  }

  // new RingBuf(mapFd): the fd is duplicated, so the caller may close its map handle.
  explicit RingBuf(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RingBuf>(info) {
    Napi::Env env = info.Env();
    if (info.Length() != 1 || !info[0].IsNumber()) ThrowErrno(env, EINVAL, "open ring buffer", "expects a map fd");
    LogScope scope;
    fd_ = ::fcntl(info[0].As<Napi::Number>().Int32Value(), F_DUPFD_CLOEXEC, 0);
    if (fd_ < 0) ThrowErrno(env, errno, "open ring buffer");
    rb_ = ring_buffer__new(fd_, &RingBuf::OnRecord, this, nullptr);
    if (!rb_) {
      int err = errno;
      ::close(fd_);
      fd_ = -1;
      ThrowErrno(env, err, "open ring buffer");
    }
  }
  ~RingBuf() override { Release(); }

 private:
  // libbpf calls this per record from ring_buffer__consume; a negative return stops the
  // consume and leaves that record in the ring for the next call (the cap of one call)
  static int OnRecord(void* ctx, void* data, size_t size) {
    auto* self = static_cast<RingBuf*>(ctx);
    if (self->batch_.size() >= self->max_) return -E2BIG;
    const auto* p = static_cast<const uint8_t*>(data);
    self->batch_.emplace_back(p, p + size);
    return 0;
  }

  // consume(max): up to max records (default 4096) as an array of Buffers
  Napi::Value Consume(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!rb_) ThrowErrno(env, EBADF, "consume ring buffer", "closed");
    max_ = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Uint32Value() : 4096;
    batch_.clear();
    LogScope scope;
    int n = ring_buffer__consume(rb_);
    if (n < 0 && n != -E2BIG) ThrowErrno(env, -n, "consume ring buffer");
    Napi::Array out = Napi::Array::New(env, batch_.size());
    for (size_t i = 0; i < batch_.size(); i++)
      out.Set(i, Napi::Buffer<uint8_t>::Copy(env, batch_[i].data(), batch_[i].size()));
    batch_.clear();
    return out;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Release();
    return info.Env().Undefined();
  }

  void Release() {
    if (rb_) ring_buffer__free(rb_);
    rb_ = nullptr;
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  ring_buffer* rb_ = nullptr;
  int fd_ = -1;
  size_t max_ = 4096;
  std::vector<std::vector<uint8_t>> batch_;
};

}  // namespace

Napi::Function RingBufInit(Napi::Env env) { return RingBuf::Init(env); }

}  // namespace weir
