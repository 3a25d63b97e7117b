// sources/kube-proxy-daemonset: is a kube-proxy DaemonSet still deployed? A kube-proxy
// left running rewrites its rules at its next sync, undoing weir's takeover on every node,
// so the daemon warns loudly when one exists. One GET of kube-system/kube-proxy (RBAC: get
// on that one name only, see API_ACCESS in kube-resources.ts).

import { AppsV1Api, type KubeConfig } from '@kubernetes/client-node';

export interface KubeProxyDaemonSet {
  present: boolean;
  desired?: number;
  ready?: number;
}

export async function findKubeProxyDaemonSet(kc: KubeConfig, namespace = 'kube-system', name = 'kube-proxy'): Promise<KubeProxyDaemonSet> {
  const api = kc.makeApiClient(AppsV1Api);
  try {
    const ds = await api.readNamespacedDaemonSet({ name, namespace });
    return { present: true, desired: ds.status?.desiredNumberScheduled ?? 0, ready: ds.status?.numberReady ?? 0 };
  } catch (e) {
    const code = (e as { code?: number }).code ?? (e as { response?: { statusCode?: number } }).response?.statusCode;
    if (code === 404) return { present: false };
    throw e;
  }
}
