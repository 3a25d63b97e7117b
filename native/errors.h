// native/: errno-carrying JS errors and the libbpf log capture every call runs under.
// Every failure becomes a JS Error {code: 'ENOENT', errno, op, libbpfLog, verifierLog?}.
#pragma once
#include <napi.h>
#include <string>

namespace weir {

// Installs the libbpf print callback once; messages land in a buffer that each
// LogScope clears, so an error carries only what libbpf said during that call.
void InstallLibbpfPrint();

struct LogScope {
  LogScope();
};

// The libbpf messages captured since the current LogScope began.
const std::string& CapturedLog();

// The JS Error for errno `err` (positive or negative) while doing `op`, with a captured
// libbpf log (an asynchronous call's, taken on its worker thread).
Napi::Error MakeError(Napi::Env env, int err, const std::string& op, const std::string& captured,
                      const std::string& detail = "");

// Throws a JS Error for errno `err` (positive or negative) while doing `op`.
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const std::string& op, const std::string& detail = "");

// Throws when a libbpf call returned a negative errno; returns the value otherwise.
int Check(Napi::Env env, int ret, const std::string& op);

}  // namespace weir
