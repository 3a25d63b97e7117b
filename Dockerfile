# weir image: build stage compiles the BPF objects, the native addon and the TypeScript
# with the same Make targets CI runs; the runtime stage is a slim Node image with the
# libbpf runtime and the tools weir drives (ip, tc, iptables/nft for kube-proxy cleanup).
# Both stages run the Node.js the Makefile pins (NODE_VERSION, the current LTS): the addon is
# built against the headers of the same Node that runs it, and make uses the image's Node
# (NODE_DIR=/usr/local) instead of fetching its own.

FROM node:24.22.3-bookworm AS build
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends clang llvm libclang-rt-14-dev libbpf-dev pkg-config make g++ python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN make build NODE_DIR=/usr/local \
 && npm prune --omit=dev

FROM node:24.22.3-bookworm-slim
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends libbpf1 iproute2 iptables nftables \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/weir
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/build/bpf ./build/bpf
COPY --from=build /src/build/Release/weir.node ./build/Release/weir.node
COPY --from=build /src/bin ./bin
ENV PATH=/opt/weir/bin:$PATH
ENTRYPOINT ["/opt/weir/bin/weir"]
CMD ["daemon"]
