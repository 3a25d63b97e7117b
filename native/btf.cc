// native/: Btf, BTF as plain JS layouts (see btf.h).
#include "btf.h"

#include <cerrno>

#include "util.h"

namespace weir {
namespace {

Napi::FunctionReference* g_ctor = nullptr;

struct BtfInit {
  btf* owned = nullptr;
  const btf* borrowed = nullptr;
  ObjRef owner;
  std::string label;
};

const char* KindName(int kind) {
  switch (kind) {
    case BTF_KIND_INT:
      return "int";
    case BTF_KIND_PTR:
      return "ptr";
    case BTF_KIND_ARRAY:
      return "array";
    case BTF_KIND_STRUCT:
      return "struct";
    case BTF_KIND_UNION:
      return "union";
    case BTF_KIND_ENUM:
      return "enum";
    case BTF_KIND_FWD:
      return "fwd";
    case BTF_KIND_TYPEDEF:
      return "typedef";
    case BTF_KIND_VOLATILE:
      return "volatile";
    case BTF_KIND_CONST:
      return "const";
    case BTF_KIND_RESTRICT:
      return "restrict";
    case BTF_KIND_FUNC:
      return "func";
    case BTF_KIND_FUNC_PROTO:
      return "func_proto";
    case BTF_KIND_VAR:
      return "var";
    case BTF_KIND_DATASEC:
      return "datasec";
    case BTF_KIND_FLOAT:
      return "float";
    case BTF_KIND_DECL_TAG:
      return "decl_tag";
    case BTF_KIND_TYPE_TAG:
      return "type_tag";
    case BTF_KIND_ENUM64:
      return "enum64";
    default:
      return "unknown";
  }
}

int KindFromName(const std::string& k) {
  for (int i = 1; i <= BTF_KIND_ENUM64; i++)
    if (k == KindName(i)) return i;
  return -1;
}

}  // namespace

Napi::Function Btf::Init(Napi::Env env) {
  Napi::Function f =
      DefineClass(env, "Btf",
                  {StaticMethod("fromFile", &Btf::FromFile), StaticMethod("fromKernelId", &Btf::FromKernelId),
                   InstanceMethod("find", &Btf::Find), InstanceMethod("describe", &Btf::DescribeJs),
                   InstanceMethod("struct", &Btf::Struct), InstanceMethod("enum", &Btf::Enum),
                   InstanceMethod("datasec", &Btf::Datasec), InstanceMethod("names", &Btf::Names)});
  g_ctor = new Napi::FunctionReference(Napi::Persistent(f));
  return f;
}

Napi::Object Btf::NewBorrowed(Napi::Env env, ObjRef owner, const btf* b) {
  BtfInit init;
  init.borrowed = b;
  init.label = "BTF of " + owner->path;
  init.owner = std::move(owner);
  return g_ctor->New({Napi::External<BtfInit>::New(env, &init)});
}

Btf::Btf(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Btf>(info) {
  if (info.Length() != 1 || !info[0].IsExternal())
    ThrowErrno(info.Env(), EINVAL, "new Btf", "use Btf.fromFile(), Btf.fromKernelId() or an object's btf()");
  BtfInit* init = info[0].As<Napi::External<BtfInit>>().Data();
  owned_ = init->owned;
  borrowed_ = init->borrowed;
  owner_ = init->owner;
  label_ = init->label;
}

Btf::~Btf() {
  if (owned_) btf__free(owned_);
}

Napi::Value Btf::FromFile(const Napi::CallbackInfo& info) {
  LogScope scope;
  std::string path = ArgString(info, 0, "read BTF");
  btf* b = btf__parse(path.c_str(), nullptr);
  if (!b) ThrowErrno(info.Env(), errno, "read BTF from " + path);
  BtfInit init;
  init.owned = b;
  init.label = "BTF of " + path;
  return g_ctor->New({Napi::External<BtfInit>::New(info.Env(), &init)});
}

Napi::Value Btf::FromKernelId(const Napi::CallbackInfo& info) {
  LogScope scope;
  int64_t id = ArgInt(info, 0, "load kernel BTF");
  btf* b = btf__load_from_kernel_by_id(static_cast<__u32>(id));
  if (!b) ThrowErrno(info.Env(), errno, "load kernel BTF id " + std::to_string(id));
  BtfInit init;
  init.owned = b;
  init.label = "kernel BTF id " + std::to_string(id);
  return g_ctor->New({Napi::External<BtfInit>::New(info.Env(), &init)});
}

const btf* Btf::Get(Napi::Env env) {
  if (owner_) CheckUsable(env, owner_, label_, false);
  return owned_ ? owned_ : borrowed_;
}

int Btf::FindId(Napi::Env env, const std::string& name, const std::string& kind) {
  const btf* b = Get(env);
  int id;
  if (kind.empty()) {
    id = btf__find_by_name(b, name.c_str());
  } else {
    int k = KindFromName(kind);
    if (k < 0) ThrowErrno(env, EINVAL, "find BTF type " + name, "unknown kind '" + kind + "'");
    id = btf__find_by_name_kind(b, name.c_str(), k);
  }
  return id < 0 ? -1 : id;
}

// One type as a plain object; see btf.h. Pointers are not followed, so this terminates.
Napi::Object Btf::Describe(Napi::Env env, __u32 id, int depth) {
  const btf* b = Get(env);
  if (depth > 32) ThrowErrno(env, ELOOP, "describe BTF type " + std::to_string(id), "nesting too deep");
  std::string hint;
  const btf_type* t = btf__type_by_id(b, id);
  if (!t) ThrowErrno(env, ENOENT, "describe BTF type " + std::to_string(id), label_);
  while (btf_is_typedef(t) || btf_is_mod(t)) {
    if (btf_is_typedef(t) && hint.empty()) hint = btf__name_by_offset(b, t->name_off);
    id = t->type;
    t = btf__type_by_id(b, id);
  }
  Napi::Object o = Napi::Object::New(env);
  int kind = id == 0 ? 0 : btf_kind(t);
  const char* name = id == 0 ? "" : btf__name_by_offset(b, t->name_off);
  o.Set("kind", id == 0 ? "void" : KindName(kind));
  o.Set("id", id);
  if (name && *name) o.Set("name", name);
  long long size = id == 0 ? 0 : btf__resolve_size(b, id);
  o.Set("size", static_cast<double>(size < 0 ? 0 : size));
  if (!hint.empty()) o.Set("hint", hint);
  switch (kind) {
    case BTF_KIND_INT: {
      __u32 enc = btf_int_encoding(t);
      o.Set("signed", (enc & BTF_INT_SIGNED) != 0);
      o.Set("bits", btf_int_bits(t));
      if (enc & BTF_INT_BOOL) o.Set("bool", true);
      break;
    }
    case BTF_KIND_ENUM:
    case BTF_KIND_ENUM64:
      o.Set("kind", "enum");
      o.Set("signed", btf_kflag(t));
      break;
    case BTF_KIND_ARRAY: {
      const struct btf_array* a = btf_array(t);
      o.Set("length", a->nelems);
      o.Set("elem", Describe(env, a->type, depth + 1));
      break;
    }
    case BTF_KIND_STRUCT:
    case BTF_KIND_UNION: {
      const btf_member* m = btf_members(t);
      Napi::Array members = Napi::Array::New(env, btf_vlen(t));
      for (__u16 i = 0; i < btf_vlen(t); i++, m++) {
        Napi::Object mo = Napi::Object::New(env);
        __u32 bitOff = btf_member_bit_offset(t, i);
        __u32 bitSize = btf_member_bitfield_size(t, i);
        mo.Set("name", btf__name_by_offset(b, m->name_off));
        mo.Set("offset", bitOff / 8);
        mo.Set("bitOffset", bitOff);
        mo.Set("bitSize", bitSize);
        Napi::Object mt = Describe(env, m->type, depth + 1);
        mo.Set("size", mt.Get("size"));
        mo.Set("type", mt);
        members.Set(i, mo);
      }
      o.Set("members", members);
      break;
    }
    default:
      break;
  }
  return o;
}

Napi::Value Btf::Find(const Napi::CallbackInfo& info) {
  LogScope scope;
  std::string name = ArgString(info, 0, "find BTF type");
  std::string kind = HasArg(info, 1) ? ArgString(info, 1, "find BTF type") : "";
  int id = FindId(info.Env(), name, kind);
  return id < 0 ? info.Env().Null() : Napi::Number::New(info.Env(), id);
}

Napi::Value Btf::DescribeJs(const Napi::CallbackInfo& info) {
  LogScope scope;
  return Describe(info.Env(), static_cast<__u32>(ArgInt(info, 0, "describe BTF type")), 0);
}

// struct(name) -> the struct (or union) layout; ENOENT when the BTF has no such type.
Napi::Value Btf::Struct(const Napi::CallbackInfo& info) {
  LogScope scope;
  Napi::Env env = info.Env();
  std::string name = ArgString(info, 0, "find BTF struct");
  int id = FindId(env, name, "struct");
  if (id < 0) id = FindId(env, name, "union");
  if (id < 0) ThrowErrno(env, ENOENT, "find BTF struct " + name, "not in " + label_);
  return Describe(env, static_cast<__u32>(id), 0);
}

// enum(name) -> {name, size, signed, values: {NAME: value}}.
Napi::Value Btf::Enum(const Napi::CallbackInfo& info) {
  LogScope scope;
  Napi::Env env = info.Env();
  std::string name = ArgString(info, 0, "find BTF enum");
  int id = FindId(env, name, "enum");
  if (id < 0) id = FindId(env, name, "enum64");
  if (id < 0) ThrowErrno(env, ENOENT, "find BTF enum " + name, "not in " + label_);
  const btf* b = Get(env);
  const btf_type* t = btf__type_by_id(b, id);
  Napi::Object values = Napi::Object::New(env);
  bool isSigned = btf_kflag(t);
  if (btf_is_enum(t)) {
    const struct btf_enum* e = btf_enum(t);
    for (__u16 i = 0; i < btf_vlen(t); i++, e++)
      values.Set(btf__name_by_offset(b, e->name_off),
                 isSigned ? static_cast<double>(e->val) : static_cast<double>(static_cast<__u32>(e->val)));
  } else {
    const struct btf_enum64* e = btf_enum64(t);
    for (__u16 i = 0; i < btf_vlen(t); i++, e++)
      values.Set(btf__name_by_offset(b, e->name_off), static_cast<double>(btf_enum64_value(e)));
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", name);
  o.Set("size", t->size);
  o.Set("signed", isSigned);
  o.Set("values", values);
  return o;
}

// datasec(name) -> [{name, offset, size, type}] for the variables of a data section.
Napi::Value Btf::Datasec(const Napi::CallbackInfo& info) {
  LogScope scope;
  Napi::Env env = info.Env();
  std::string name = ArgString(info, 0, "find BTF datasec");
  int id = FindId(env, name, "datasec");
  if (id < 0) ThrowErrno(env, ENOENT, "find BTF datasec " + name, "not in " + label_);
  const btf* b = Get(env);
  const btf_type* t = btf__type_by_id(b, id);
  const btf_var_secinfo* v = btf_var_secinfos(t);
  Napi::Array out = Napi::Array::New(env, btf_vlen(t));
  for (__u16 i = 0; i < btf_vlen(t); i++, v++) {
    const btf_type* var = btf__type_by_id(b, v->type);
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", btf__name_by_offset(b, var->name_off));
    o.Set("offset", v->offset);
    o.Set("size", v->size);
    o.Set("type", Describe(env, var->type, 0));
    out.Set(i, o);
  }
  return out;
}

// names(kind) -> every named type of that kind, in BTF order.
Napi::Value Btf::Names(const Napi::CallbackInfo& info) {
  LogScope scope;
  Napi::Env env = info.Env();
  std::string kind = ArgString(info, 0, "list BTF names");
  int k = KindFromName(kind);
  if (k < 0) ThrowErrno(env, EINVAL, "list BTF names", "unknown kind '" + kind + "'");
  const btf* b = Get(env);
  Napi::Array out = Napi::Array::New(env);
  __u32 n = btf__type_cnt(b);
  for (__u32 id = 1; id < n; id++) {
    const btf_type* t = btf__type_by_id(b, id);
    if (btf_kind(t) != k || !t->name_off) continue;
    out.Set(out.Length(), btf__name_by_offset(b, t->name_off));
  }
  return out;
}

}  // namespace weir
