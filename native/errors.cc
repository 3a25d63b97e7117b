// native/: errno-carrying JS errors and the libbpf log capture (see errors.h).
#include "errors.h"

#include <bpf/libbpf.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace weir {
namespace {

// per thread: an asynchronous load (Object.loadAsync) runs libbpf on a worker thread while
// the main thread goes on making calls that capture their own log
thread_local std::string g_log;
bool g_forward = false;

int PrintCallback(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level == LIBBPF_DEBUG && !g_forward) return 0;
  va_list copy;
  va_copy(copy, args);
  int n = vsnprintf(nullptr, 0, fmt, copy);
  va_end(copy);
  if (n <= 0) return 0;
  std::string msg(static_cast<size_t>(n) + 1, '\0');
  vsnprintf(msg.data(), msg.size(), fmt, args);
  msg.resize(static_cast<size_t>(n));
  if (level != LIBBPF_DEBUG) g_log += msg;
  if (g_forward) fputs(msg.c_str(), stderr);
  return n;
}

// libbpf 1.1 prints a failed load's verifier log between these markers.
std::string ExtractVerifierLog(const std::string& log) {
  static const char kBegin[] = "-- BEGIN PROG LOAD LOG --\n";
  static const char kEnd[] = "-- END PROG LOAD LOG --";
  std::string out;
  size_t pos = 0;
  while ((pos = log.find(kBegin, pos)) != std::string::npos) {
    size_t start = pos + sizeof(kBegin) - 1;
    size_t end = log.find(kEnd, start);
    if (end == std::string::npos) end = log.size();
    out += log.substr(start, end - start);
    pos = end;
  }
  return out;
}

}  // namespace

void InstallLibbpfPrint() {
  const char* dbg = getenv("WEIR_LIBBPF_DEBUG");
  g_forward = dbg && *dbg && strcmp(dbg, "0") != 0;
  libbpf_set_print(PrintCallback);
}

LogScope::LogScope() { g_log.clear(); }

const std::string& CapturedLog() { return g_log; }

void ThrowErrno(Napi::Env env, int err, const std::string& op, const std::string& detail) {
  throw MakeError(env, err, op, g_log, detail);
}

Napi::Error MakeError(Napi::Env env, int err, const std::string& op, const std::string& captured,
                      const std::string& detail) {
  if (err < 0) err = -err;
  if (err == 0) err = EINVAL;
  const char* name = strerrorname_np(err);
  // 524 is the kernel-internal ENOTSUPP that leaks out of some BPF commands
  std::string code = name ? name : (err == 524 ? "ENOTSUPP" : "E" + std::to_string(err));
  std::string msg = op + ": " + (err == 524 ? "Operation not supported" : strerror(err));
  if (!detail.empty()) msg += " (" + detail + ")";
  std::string log = captured;
  while (!log.empty() && log.back() == '\n') log.pop_back();
  std::string vlog = ExtractVerifierLog(log);
  if (!log.empty()) {
    // the verifier log can be megabytes: the message keeps only libbpf's own lines
    std::string brief;
    size_t start = 0;
    bool inLog = false;
    while (start < log.size()) {
      size_t nl = log.find('\n', start);
      if (nl == std::string::npos) nl = log.size();
      std::string line = log.substr(start, nl - start);
      if (line.find("-- BEGIN PROG LOAD LOG --") != std::string::npos) inLog = true;
      if (!inLog) brief += "\n  " + (line.rfind("libbpf: ", 0) == 0 ? line : "libbpf: " + line);
      if (line.find("-- END PROG LOAD LOG --") != std::string::npos) inLog = false;
      start = nl + 1;
    }
    msg += brief;
  }
  Napi::Error e = Napi::Error::New(env, msg);
  Napi::Object o = e.Value();
  o.Set("code", code);
  o.Set("errno", err);
  o.Set("op", op);
  o.Set("libbpfLog", log);
  if (!vlog.empty()) o.Set("verifierLog", vlog);
  return e;
}

int Check(Napi::Env env, int ret, const std::string& op) {
  // libbpf 1.x returns -errno from every call, the raw bpf_* wrappers included
  if (ret < 0) ThrowErrno(env, -ret, op);
  return ret;
}

}  // namespace weir
