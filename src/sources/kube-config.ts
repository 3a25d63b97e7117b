// sources/kube-config: where the API source finds the API server: a kubeconfig file
// (--kubeconfig) or the pod's service account. A missing piece is one readable error here,
// before any informer starts.

import { existsSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';

const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/**
 * The client configuration: `kubeconfig` when given, else the pod's service account
 * (KUBERNETES_SERVICE_HOST/PORT and the mounted token and CA). `serviceAccountPrefix` is
 * prepended to the service-account paths (tests).
 */
export function loadKubeConfig(opts: { kubeconfig?: string; serviceAccountPrefix?: string } = {}): KubeConfig {
  const kc = new KubeConfig();
  if (opts.kubeconfig) {
    if (!existsSync(opts.kubeconfig)) throw new Error(`--kubeconfig ${opts.kubeconfig}: no such file`);
    kc.loadFromFile(opts.kubeconfig);
    if (!kc.getCurrentCluster()) throw new Error(`--kubeconfig ${opts.kubeconfig}: no current context with a cluster`);
    return kc;
  }
  const { KUBERNETES_SERVICE_HOST: host, KUBERNETES_SERVICE_PORT: port } = process.env;
  if (!host || !port) throw new Error('no --kubeconfig and not in a pod: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are unset');
  const prefix = opts.serviceAccountPrefix ?? '';
  for (const f of ['token', 'ca.crt']) {
    if (!existsSync(`${prefix}${SERVICE_ACCOUNT_DIR}/${f}`))
      throw new Error(`in-cluster config: ${prefix}${SERVICE_ACCOUNT_DIR}/${f} is missing (automountServiceAccountToken off?)`);
  }
  kc.loadFromCluster(prefix);
  return kc;
}
