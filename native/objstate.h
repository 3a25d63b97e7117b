// native/: the state one libbpf object shares with the Map, Program and Btf handles taken
// from it. Handles keep the state alive (so GC order never matters) and check `closed`
// before every use, so a handle from a closed object throws instead of using a stale fd.
#pragma once
#include <bpf/libbpf.h>

#include <memory>
#include <string>

namespace weir {

struct ObjState {
  bpf_object* obj = nullptr;
  std::string path;
  bool loaded = false;
  bool closed = false;
  // a loadAsync is running on a worker thread: nothing else may touch obj until it ends
  bool loading = false;

  void Close() {
    if (obj) bpf_object__close(obj);
    obj = nullptr;
    closed = true;
  }
  ~ObjState() { Close(); }
};

using ObjRef = std::shared_ptr<ObjState>;

// Throws (EBADF/EINVAL) when the object cannot hand out fds for `what` right now.
void CheckUsable(napi_env env, const ObjRef& ref, const std::string& what, bool needLoaded);

}  // namespace weir
