// The flags of a valid `weir daemon` on the manifests source, the base the daemon-config unit tests vary.

export const baseDaemonFlags = {
  nodeName: 'node1',
  manifests: '/tmp',
  instance: 'default',
  bpfRoot: '/sys/fs/bpf',
  connectTimeLb: 'off',
  resyncInterval: '60s',
  ctGcInterval: '30s',
  logLevel: 'info',
  kubeProxyCleanup: 'on',
};
