// native/: opening and removing pins, shared by maps, programs and links.
#include <bpf/bpf.h>
#include <unistd.h>

#include <cerrno>

#include "util.h"

namespace weir {

int OpenPinnedKind(Napi::Env env, const std::string& path, const char* kind) {
  std::string op = std::string("open pinned ") + kind + " " + path;
  int fd = Check(env, bpf_obj_get(path.c_str()), op);
  std::string got = BpfFdKind(fd);
  if (got != kind) {
    ::close(fd);
    ThrowErrno(env, EINVAL, op, "the pin holds a " + (got.empty() ? std::string("non-BPF object") : got));
  }
  return fd;
}

// unpin(path): removes a pin (the object lives on while other fds or pins hold it).
Napi::Value Unpin(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "unpin");
  if (::unlink(path.c_str()) < 0) ThrowErrno(info.Env(), errno, "unpin " + path);
  return info.Env().Undefined();
}

}  // namespace weir
