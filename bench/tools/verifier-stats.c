// bench: what the verifier spends on each program of a BPF object. Loads OBJ with its
// pinned maps under PINDIR (a private bpffs), .rodata knobs set from NAME=VALUE arguments
// (one-byte or four-byte variables), every program at log level BPF_LOG_STATS, and prints
// one JSON line: the wall time of the whole load, and per program the kernel's own
// "verification time", "processed N insns", states, and the translated and JITed sizes.
//
//   verifier-stats OBJ PINDIR [NAME=VALUE ...]
//
// Built by bench/verifier.ts into build/bench/ (cc -O2 ... -lbpf).

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOG_SIZE (1 << 20)

static long long field(const char *log, const char *label)
{
	const char *p = strstr(log, label);
	return p ? atoll(p + strlen(label)) : -1;
}

static int set_rodata(struct bpf_object *obj, const char *name, long value)
{
	const struct btf *btf = bpf_object__btf(obj);
	struct bpf_map *map;
	size_t size;
	char *data;
	int id, err;

	map = bpf_object__find_map_by_name(obj, ".rodata");
	id = btf ? btf__find_by_name_kind(btf, ".rodata", BTF_KIND_DATASEC) : -1;
	if (!map || id < 0)
		return -1;
	const void *init = bpf_map__initial_value(map, &size);
	if (!init || !(data = malloc(size)))
		return -1;
	memcpy(data, init, size);
	const struct btf_type *sec = btf__type_by_id(btf, id);
	const struct btf_var_secinfo *vs = btf_var_secinfos(sec);
	for (int i = 0; i < btf_vlen(sec); i++, vs++) {
		const struct btf_type *var = btf__type_by_id(btf, vs->type);
		if (strcmp(btf__name_by_offset(btf, var->name_off), name))
			continue;
		if (vs->offset + vs->size > size || (vs->size != 1 && vs->size != 4))
			break;
		if (vs->size == 1)
			data[vs->offset] = (char)value;
		else
			memcpy(data + vs->offset, &(int){ (int)value }, 4);
		err = bpf_map__set_initial_value(map, data, size);
		free(data);
		return err;
	}
	free(data);
	return -1;
}

int main(int argc, char **argv)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts);
	struct bpf_program *prog;
	struct bpf_object *obj;
	struct timespec t0, t1;
	int n = 0, err;

	if (argc < 3) {
		fprintf(stderr, "usage: %s OBJ PINDIR [NAME=VALUE ...]\n", argv[0]);
		return 2;
	}
	opts.pin_root_path = argv[2];
	obj = bpf_object__open_file(argv[1], &opts);
	if (!obj) {
		fprintf(stderr, "open %s failed\n", argv[1]);
		return 1;
	}
	for (int i = 3; i < argc; i++) {
		char *eq = strchr(argv[i], '=');
		if (!eq)
			return 2;
		*eq = 0;
		if (set_rodata(obj, argv[i], strtol(eq + 1, NULL, 0))) {
			fprintf(stderr, "no .rodata variable %s in %s\n", argv[i], argv[1]);
			return 1;
		}
	}
	char *logs[64] = {};
	bpf_object__for_each_program(prog, obj) {
		if (n >= 64)
			break;
		logs[n] = calloc(1, LOG_SIZE);
		bpf_program__set_log_buf(prog, logs[n], LOG_SIZE);
		bpf_program__set_log_level(prog, 4 /* BPF_LOG_STATS */);
		n++;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	err = bpf_object__load(obj);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (err) {
		fprintf(stderr, "load %s failed: %d\n", argv[1], err);
		return 1;
	}
	printf("{\"object\":\"%s\",\"loadUs\":%lld,\"programs\":[", argv[1],
	       (long long)(t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000);
	n = 0;
	bpf_object__for_each_program(prog, obj) {
		struct bpf_prog_info info = {};
		__u32 len = sizeof(info);
		const char *log = logs[n] ? logs[n] : "";

		bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len);
		printf("%s{\"name\":\"%s\",\"verifyUs\":%lld,\"processedInsns\":%lld,\"totalStates\":%lld,\"peakStates\":%lld,"
		       "\"verifiedInsns\":%u,\"xlatedInsns\":%u,\"jitedBytes\":%u}",
		       n ? "," : "", bpf_program__name(prog), field(log, "verification time "), field(log, "processed "),
		       field(log, "total_states "), field(log, "peak_states "), info.verified_insns, info.xlated_prog_len / 8,
		       info.jited_prog_len);
		n++;
	}
	printf("]}\n");
	bpf_object__close(obj);
	return 0;
}
