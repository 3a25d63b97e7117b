# weir: build the BPF objects, the native addon and the TypeScript, and run them.
# `make demo` and `make test` are what README.md promises: each installs what it needs
# (deps), builds (build), then runs. Every step skips what is already done.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
ARCH := $(shell uname -m)

CLANG ?= clang
BPF_CFLAGS := -O2 -g -target bpf -Wall -Werror -Wno-unused-function \
	-I bpf-c -I bpf-c/include -I /usr/include/$(ARCH)-linux-gnu
BPF_HEADERS := $(wildcard bpf-c/include/weir/*.h bpf-c/lib/*.h)
BPF_OBJS := $(patsubst bpf-c/%.c,build/bpf/%.o,$(wildcard bpf-c/*.c))
TEST_BPF_OBJS := $(patsubst test/fixtures/bpf/%.c,build/test-bpf/%.o,$(wildcard test/fixtures/bpf/*.c))
# host builds of BPF library code, under ASan/UBSan, for what a BPF test run cannot feed it
TEST_NATIVE := $(patsubst test/fixtures/native/%.c,build/test-native/%,$(wildcard test/fixtures/native/*.c))
ADDON := build/Release/weir.node
NATIVE_SRCS := $(wildcard native/*.cc native/*.h)
TS_SRCS := $(shell find src test bench scripts -name '*.ts' 2>/dev/null)
ABI_GEN := src/bpf/abi.gen.ts

# Debian packages: the toolchain, libbpf, and the real tools the tests and the demo drive.
APT_PACKAGES := clang llvm libclang-rt-14-dev libbpf-dev libbpf1 pkg-config make g++ python3 \
	iproute2 iputils-ping iptables nftables iperf3 curl socat procps psmisc kmod util-linux \
	containernetworking-plugins bpftool prometheus openssl clang-format tcpdump ethtool ipset

# Node.js: weir runs on the current LTS, pinned here and in the Dockerfile. The machine may ship
# another Node (Debian's, or Node 20, end of life since April 2026). The npm registry carries
# Node itself as a package: node-linux-<arch> is the official binary with the headers node-gyp
# builds the addon against, and npm is a package too. `make deps` fetches both with curl (no
# other network needed), checks their sha512 and unpacks them under .tools/; every recipe
# below runs with that node first on PATH, and bin/weir prefers it.
NODE_VERSION := 24.22.3
NPM_VERSION := 11.19.1
NODE_ARCH := $(if $(filter aarch64 arm64,$(ARCH)),arm64,x64)
NODE_SHA512_x64 := KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==
NODE_SHA512_arm64 := IZx0J52/1NDwAsY2iyWR9nlPIYuYviTWetjj8+ElvYQh2+XRhLfCfkbFEF/2O5vGI2hcUbyPNHV+nz342FbJXw==
NPM_SHA512 := ztsxKxt/kkIaAs+2i0GU6I+DRmUdrNasxTZKJe9TCdSjKxlhah/4r/hl5ygMD6XAg1qZ9c2TNomR4qgOydp10g==
NODE_DIR := $(CURDIR)/.tools/node-v$(NODE_VERSION)-$(NODE_ARCH)
NODE_BIN := $(NODE_DIR)/bin/node
export PATH := $(NODE_DIR)/bin:$(PATH)

NODE_TEST := node --test --test-concurrency=1 --enable-source-maps

.PHONY: all deps deps-apt deps-tools deps-node build bpf addon ts test test-unit lint format demo bench bench-quick clean distclean

all: build

## deps: Debian packages (only the missing ones), the pinned Node.js and npm, and node_modules
## (npm ci when the lockfile changed)
deps: deps-apt deps-tools deps-node

deps-apt:
	@missing=""; for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "deps: installing$$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

deps-tools: $(NODE_BIN)

# one registry tarball, checked against its pinned sha512 before anything is unpacked
define fetch-tarball
	curl -sSfL --retry 3 -o $(1).tmp $(2)
	@[ "$$(openssl dgst -sha512 -binary $(1).tmp | base64 -w0)" = "$(3)" ] || { echo "deps: $(2): sha512 mismatch" >&2; rm -f $(1).tmp; exit 1; }
	@mv $(1).tmp $(1)
endef

$(NODE_BIN):
	@mkdir -p .tools/dl $(NODE_DIR).tmp
	$(call fetch-tarball,.tools/dl/node-$(NODE_VERSION)-$(NODE_ARCH).tgz,https://registry.npmjs.org/node-linux-$(NODE_ARCH)/-/node-linux-$(NODE_ARCH)-$(NODE_VERSION).tgz,$(NODE_SHA512_$(NODE_ARCH)))
	$(call fetch-tarball,.tools/dl/npm-$(NPM_VERSION).tgz,https://registry.npmjs.org/npm/-/npm-$(NPM_VERSION).tgz,$(NPM_SHA512))
	tar xzf .tools/dl/node-$(NODE_VERSION)-$(NODE_ARCH).tgz -C $(NODE_DIR).tmp --strip-components=1
	@mkdir -p $(NODE_DIR).tmp/lib/node_modules/npm
	tar xzf .tools/dl/npm-$(NPM_VERSION).tgz -C $(NODE_DIR).tmp/lib/node_modules/npm --strip-components=1
	ln -sf ../lib/node_modules/npm/bin/npm-cli.js $(NODE_DIR).tmp/bin/npm
	ln -sf ../lib/node_modules/npm/bin/npx-cli.js $(NODE_DIR).tmp/bin/npx
	@rm -rf $(NODE_DIR) && mv $(NODE_DIR).tmp $(NODE_DIR)
	@ln -sfn $(notdir $(NODE_DIR)) .tools/node
	@echo "deps: Node.js $$($(NODE_BIN) --version), npm $$($(NODE_DIR)/bin/npm --version) in $(NODE_DIR)"

deps-node: node_modules/.package-lock.json

# node_modules follows the node that installed it: a new pinned Node reinstalls
node_modules/.package-lock.json: package.json package-lock.json $(NODE_BIN)
	npm ci --no-audit --no-fund
	@touch $@

## build: BPF objects, the addon, the generated ABI module, then TypeScript
build: bpf addon ts

bpf: $(BPF_OBJS) $(TEST_BPF_OBJS) $(TEST_NATIVE)

build/bpf/%.o: bpf-c/%.c $(BPF_HEADERS)
	@mkdir -p $(@D)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

# test fixtures include deliberately broken programs: no -Werror, warnings are the point
build/test-bpf/%.o: test/fixtures/bpf/%.c $(BPF_HEADERS)
	@mkdir -p $(@D)
	$(CLANG) $(filter-out -Werror,$(BPF_CFLAGS)) -c $< -o $@

# a fixture that includes a hook's source whole (a resized map: test/bpf/migrate.test.ts)
build/test-bpf/from_pod_ct4096.o: bpf-c/from_pod.c

build/test-native/%: test/fixtures/native/%.c $(BPF_HEADERS)
	@mkdir -p $(@D)
	$(CLANG) -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all \
		-I bpf-c -I bpf-c/include -include arpa/inet.h $< -o $@

addon: $(ADDON)

# configure + build, never `rebuild`: node-gyp's clean would delete build/bpf too
# --nodedir: the headers of the pinned Node, from its tarball (node-gyp would otherwise download them;
# npm_config_nodedir too, or a nodedir in the user's .npmrc wins)
$(ADDON): binding.gyp $(NATIVE_SRCS) node_modules/.package-lock.json $(NODE_BIN)
	npm_config_nodedir=$(NODE_DIR) node node_modules/node-gyp/bin/node-gyp.js configure --silent --nodedir=$(NODE_DIR)
	npm_config_nodedir=$(NODE_DIR) node node_modules/node-gyp/bin/node-gyp.js build --silent

$(ABI_GEN): $(BPF_OBJS) $(ADDON) scripts/gen-abi.mjs
	node scripts/gen-abi.mjs $(BPF_OBJS) > $@.tmp && mv $@.tmp $@

# the commit weir_build_info and `weir version` report, and whether the tree differed from it;
# "unknown" outside a git checkout (the image's build context has no .git). In dist/, which the
# image copies; rewritten only when it changes
BUILD_INFO := dist/build-info.json
.PHONY: $(BUILD_INFO)
$(BUILD_INFO):
	@mkdir -p $(@D)
	@commit=$$(git rev-parse HEAD 2>/dev/null || echo unknown); dirty=false; \
	if [ "$$commit" != unknown ] && [ -n "$$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then dirty=true; fi; \
	printf '{"commit":"%s","dirty":%s}\n' "$$commit" "$$dirty" > $@.tmp; \
	if cmp -s $@.tmp $@; then rm $@.tmp; else mv $@.tmp $@; fi

ts: dist/.stamp $(BUILD_INFO)

dist/.stamp: $(ABI_GEN) $(TS_SRCS) tsconfig.json node_modules/.package-lock.json
	npx tsc -p tsconfig.json
	@touch $@

## test: everything, as root, on this kernel: unit, BPF_PROG_TEST_RUN, real packets in the lab
test: deps build
	@[ "$$(id -u)" = 0 ] || { echo "make test needs root (BPF, namespaces, cgroups)"; exit 1; }
	$(NODE_TEST) $$(find dist/test -name '*.test.js' | sort)

# the tests that need neither root nor a kernel
test-unit: build
	$(NODE_TEST) $$(find dist/test/unit -name '*.test.js' | sort)

## lint: typescript-eslint (with the type checker) and prettier on the TypeScript, clang-format on
## bpf-c/ (kernel style) and native/; `make format` rewrites what lint would complain about
TS_LINT_GLOBS := 'src/**/*.ts' 'test/**/*.ts' 'bench/**/*.ts' 'scripts/**/*.ts' 'scripts/**/*.mjs'
C_SRCS := $(wildcard bpf-c/*.c bpf-c/lib/*.h bpf-c/include/weir/*.h test/fixtures/bpf/*.c test/fixtures/native/*.c)
CXX_SRCS := $(wildcard native/*.cc native/*.h)

lint: deps build
	npx prettier --check --log-level warn $(TS_LINT_GLOBS)
	npx eslint --max-warnings 0 .
	clang-format --dry-run -Werror --style=file:bpf-c/.clang-format $(C_SRCS)
	clang-format --dry-run -Werror --style=file:native/.clang-format $(CXX_SRCS)

format: deps-node
	npx prettier --write --log-level warn $(TS_LINT_GLOBS)
	clang-format -i --style=file:bpf-c/.clang-format $(C_SRCS)
	clang-format -i --style=file:native/.clang-format $(CXX_SRCS)

## demo: build a lab, run weir in it, show what it does, tear it down
demo: deps build
	@[ "$$(id -u)" = 0 ] || { echo "make demo needs root (namespaces, BPF)"; exit 1; }
	node --enable-source-maps dist/scripts/demo.js

## bench: weir against kube-proxy-style iptables and nftables rules, same run, same machine
bench: deps build
	node --enable-source-maps dist/bench/run.js

bench-quick: deps build
	node --enable-source-maps dist/bench/run.js --quick
	node --enable-source-maps dist/bench/xdp-drop.js --quick
	node --enable-source-maps dist/bench/cpu-per-gb.js --quick

## bench-memory: the daemon's memory with 50,000 pods and 10,000 services from the fake API server
.PHONY: bench-memory
bench-memory: deps build
	node --enable-source-maps dist/bench/memory.js

clean:
	rm -rf build dist

distclean: clean
	rm -rf node_modules .tools

## bench-startup: process start to ready and RSS at ready, 10,000 and 50,000 Services x 10
## endpoints, through the manifests source and the fake API server (bench/results/startup.md)
.PHONY: bench-startup
bench-startup: deps build
	node --enable-source-maps dist/bench/startup.js

## chaos: issue 16's chaos under load: two lab nodes, 100 kill -9 restarts of both daemons, stops
## while the cluster changes, API server restarts; figures in bench/results/chaos.md/json
.PHONY: chaos
chaos: deps build
	@[ "$$(id -u)" = 0 ] || { echo "make chaos needs root (namespaces, BPF)"; exit 1; }
	node --enable-source-maps dist/bench/chaos.js

## fuzz: hostile packets (issue 16): every packet program through BPF_PROG_TEST_RUN with COUNT
## generated and mutated packets from SEED (test/fuzz); the figures go to bench/results/fuzz.md
## and .json, failing packets as hex to build/fuzz/. `make fuzz SEED=n COUNT=n` replays a run,
## `make fuzz PACKET=build/fuzz/<file>.hex` one failing packet.
.PHONY: fuzz
SEED ?= 20261130
COUNT ?= 1000000
fuzz: deps build
	@[ "$$(id -u)" = 0 ] || { echo "make fuzz needs root (BPF, netns)"; exit 1; }
	node --enable-source-maps dist/test/fuzz/main.js --seed $(SEED) --count $(COUNT) $(if $(PACKET),--packet $(PACKET))

## bench-adopt (i16 reconcile): a restart's adoption of 60,000 frontends and 600,000 backends on real maps; writes bench/results/adopt.{md,json}
.PHONY: bench-adopt
bench-adopt: deps build
	node --enable-source-maps dist/bench/adopt.js 60000 10 5 --write

## bench-overflow (i16 reconcile): 60,000 frontends into a 1,024-entry weir_frontend4: the longest event-loop block per sync; writes bench/results/overflow.{md,json}
.PHONY: bench-overflow
bench-overflow: deps build
	node --enable-source-maps dist/bench/overflow.js 60000 --write

## soak: an hour of churn (50 endpoint changes/s, policy changes, connections) on one weir node, sampling RSS,
## fds, map entries and /healthz; bench/results/soak.{md,json,svg}. SOAK_MINUTES=5 for a shorter run (soak-5min.*)
.PHONY: soak
soak: deps build
	@[ "$$(id -u)" = 0 ] || { echo "make soak needs root (namespaces, BPF, cgroups)"; exit 1; }
	node --enable-source-maps dist/bench/soak.js

## test-calico-sources: issue 17's sources part: Calico's kinds through the API source (present,
## absent, installed later), the manifests source, and deploy/calico-crds.yaml
.PHONY: test-calico-sources
test-calico-sources: build
	$(NODE_TEST) dist/test/k8s/kube-calico.test.js dist/test/unit/manifests-calico.test.js dist/test/unit/kube-deploy-crds.test.js

## test-host-policy-dataplane (i17): the host policy writer, flags, hook rows, daemon sync, XDP modes, and the one-node daemon lab
.PHONY: test-host-policy-dataplane
test-host-policy-dataplane: build
	$(NODE_TEST) dist/test/unit/host-policy-sync.test.js dist/test/unit/daemon-config-host-policy.test.js dist/test/unit/hooks-host-policy.test.js \
	  dist/test/unit/daemon-host-policy.test.js dist/test/bpf/attach-xdp-modes.test.js dist/test/lab/host-policy-daemon.test.js

## i17 labs (host protection): the XDP prefilter lab's flooder, test/fixtures/native/flood.c. This
## rule beats the sanitized pattern rule above: a flood needs -O2 and no ASan to offer >= 1 Mpps.
build/test-native/flood: test/fixtures/native/flood.c
	@mkdir -p $(@D)
	$(CLANG) -O2 -g -Wall -Wextra $< -o $@

## i17 bench: host protection's speed figures (not in make test)
## bench-xdp: packets/s per core dropped by weir's XDP prefilter, iptables raw and nftables netdev, N = 1, 10, 100 rules; bench/results/xdp-drop.{md,json}
.PHONY: bench-xdp
bench-xdp: deps build
	node --enable-source-maps dist/bench/xdp-drop.js
## bench-cpu: CPU seconds per GB of one iperf3 stream pod -> ClusterIP (weir TC, weir connect-time LB, kube-proxy iptables/nftables); bench/results/cpu-per-gb.{md,json}
.PHONY: bench-cpu
bench-cpu: deps build
	node --enable-source-maps dist/bench/cpu-per-gb.js
