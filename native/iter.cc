// native/: running BPF iterator programs (SEC("iter/...")) and reading the network
// namespace cookie. A socket iterator (iter/udp, iter/tcp) walks the network namespace
// the reading fd is created in, so iterRun() can step into another namespace for that.
#include <bpf/bpf.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "program.h"
#include "util.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace weir {
namespace {

// Closes an fd at scope exit.
struct ScopedFd {
  int fd = -1;
  ~ScopedFd() {
    if (fd >= 0) ::close(fd);
  }
};

// Moves the calling thread into a network namespace and back at scope exit.
struct NetnsStep {
  int saved = -1;
  int Enter(const std::string& path) {
    saved = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (saved < 0) return -errno;
    int target = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (target < 0) return -errno;
    int ret = setns(target, CLONE_NEWNET);
    int e = errno;
    ::close(target);
    return ret < 0 ? -e : 0;
  }
  ~NetnsStep() {
    if (saved < 0) return;
    setns(saved, CLONE_NEWNET);  // back where we were; nothing sane to do on failure
    ::close(saved);
  }
};

}  // namespace

// iterRun(program, netnsPath?) -> bytes the iterator printed. Creates an iterator link
// for the program, opens a reading fd (inside netnsPath when given) and reads it to the
// end, which runs the program once per object; then closes both.
Napi::Value IterRun(const Napi::CallbackInfo& info) {
  LogScope scope;
  Napi::Env env = info.Env();
  std::string op = "run iterator";
  Program* p = Program::From(env, info[0], op);
  std::string netns = HasArg(info, 1) ? ArgString(info, 1, op) : "";
  op = "run iterator " + p->Label() + (netns.empty() ? "" : " in netns " + netns);
  ScopedFd link;
  link.fd = Check(env, bpf_link_create(p->Fd(env), 0, BPF_TRACE_ITER, nullptr), op + " (create link)");
  ScopedFd iter;
  {
    NetnsStep step;
    if (!netns.empty()) {
      int ret = step.Enter(netns);
      if (ret < 0) ThrowErrno(env, -ret, op, "enter netns");
    }
    iter.fd = Check(env, bpf_iter_create(link.fd), op + " (create iterator)");
  }
  char buf[4096];
  double total = 0;
  for (;;) {
    ssize_t n = ::read(iter.fd, buf, sizeof(buf));
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      ThrowErrno(env, errno, op, "read");
    }
    total += static_cast<double>(n);
  }
  return Napi::Number::New(env, total);
}

// netnsCookie() -> bigint: the cookie of the calling thread's network namespace, as
// bpf_get_netns_cookie() returns it to programs (SO_NETNS_COOKIE, kernel >= 5.14).
Napi::Value NetnsCookie(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ScopedFd s;
  s.fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s.fd < 0) ThrowErrno(env, errno, "read netns cookie", "socket");
  uint64_t cookie = 0;
  socklen_t len = sizeof(cookie);
  if (getsockopt(s.fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) < 0)
    ThrowErrno(env, errno, "read netns cookie", "getsockopt(SO_NETNS_COOKIE)");
  return Napi::BigInt::New(env, cookie);
}

}  // namespace weir
