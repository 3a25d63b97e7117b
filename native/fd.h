// native/: a file descriptor a handle owns or borrows from a libbpf object.
// Owned fds (opened by path or id, created links) are closed by close() or the GC
// finalizer; borrowed ones belong to the object and are only checked, never closed.
#pragma once
#include <unistd.h>

#include <string>

#include "errors.h"
#include "objstate.h"

namespace weir {

class FdRef {
 public:
  FdRef() = default;
  ~FdRef() { Close(); }
  void Own(int fd) { own_ = fd; }
  void Borrow(ObjRef owner, std::string what) {
    owner_ = std::move(owner);
    what_ = std::move(what);
  }
  FdRef(const FdRef&) = delete;
  FdRef& operator=(const FdRef&) = delete;

  // The fd to use now; throws when closed or when the owning object is closed/not loaded.
  // `borrowed` is how the handle finds its fd in the owning object.
  template <typename F>
  int Get(Napi::Env env, const std::string& what, F borrowed) const {
    if (closed_) ThrowErrno(env, EBADF, what, "handle was closed");
    if (owner_) {
      CheckUsable(env, owner_, what_, true);
      return borrowed();
    }
    if (own_ < 0) ThrowErrno(env, EBADF, what, "handle was closed");
    return own_;
  }
  bool Owned() const { return !owner_; }
  const ObjRef& Owner() const { return owner_; }
  // Closes an owned fd; a borrowed one stays with its object, the handle just stops working.
  void Close() {
    if (own_ >= 0) ::close(own_);
    own_ = -1;
    closed_ = true;
  }
  // Gives up an owned fd without closing it.
  int Release() {
    int fd = own_;
    own_ = -1;
    closed_ = true;
    return fd;
  }

 private:
  int own_ = -1;
  bool closed_ = false;
  ObjRef owner_;
  std::string what_;
};

}  // namespace weir
